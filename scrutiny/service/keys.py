"""API keys: the admin key created on first start, verification with a small cache, and the
short-lived access tokens (JWTs) that OpenScale clients exchange a key for."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scrutiny.config import write_private_file
from scrutiny.errors import Forbidden, Unauthorized
from scrutiny.security import ROLE_GRANTS, Role, hash_api_key, looks_like_jwt, new_api_key
from scrutiny.store.catalog import ApiKeyRow

if TYPE_CHECKING:
    from scrutiny.service import Service

CACHE_SECONDS = 30.0
TOKEN_SECONDS = 12 * 3600  # what OpenScale on Cloud Pak for Data issues


class KeyService:
    def __init__(self, service: Service) -> None:
        self.service = service
        self._cache: dict[str, tuple[float, ApiKeyRow | None]] = {}
        self._lock = threading.Lock()

    @property
    def catalog(self):  # type: ignore[no-untyped-def]
        return self.service.store.catalog

    def ensure_admin_key(self) -> str | None:
        """The admin key to write to the key file: ``SCRUTINY_API_KEY`` if set, a new key on first
        start, else None (the key already exists and was written before)."""
        settings = self.service.settings
        path = settings.api_key_file
        if settings.api_key:
            if self.catalog.find_api_key(settings.api_key) is None:
                self.catalog.add_api_key(settings.api_key, name="admin (SCRUTINY_API_KEY)", role=Role.ADMIN)
            if not path.exists() or path.read_text().strip() != settings.api_key:
                write_private_file(path, settings.api_key + "\n")
            return settings.api_key
        if path.exists():
            key = path.read_text().strip()
            if key and self.catalog.find_api_key(key) is not None:
                return key
        if self.catalog.count_admin_keys() == 0 or not path.exists():
            key = new_api_key()
            self.catalog.add_api_key(key, name="admin", role=Role.ADMIN)
            write_private_file(path, key + "\n")
            return key
        return None

    def create(self, name: str, role: Role) -> tuple[str, ApiKeyRow]:
        key = new_api_key()
        return key, self.catalog.add_api_key(key, name=name, role=role)

    def revoke(self, key_id: str) -> None:
        self.catalog.revoke_api_key(key_id)
        with self._lock:
            self._cache.clear()

    def verify(self, key: str | None, grant: str) -> ApiKeyRow:
        """The key's row if it is valid and its role has ``grant``; 401/403 otherwise. An access
        token issued by ``issue_token`` stands for its key (revoking the key revokes it)."""
        if not key:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <api key>'")
        row = self._lookup(key)
        if row is None:
            raise Unauthorized("invalid API key")
        if grant not in ROLE_GRANTS[row.role]:
            raise Forbidden(f"a {row.role.value} key cannot do this (needs the {grant!r} permission)")
        return row

    def issue_token(self, key: str | None) -> tuple[str, ApiKeyRow]:
        """An access token (a JWT with a numeric ``exp``) bound to the key and its role."""
        row = self._lookup(key) if key else None
        if row is None:
            raise Unauthorized("invalid API key")
        token = self.service.box.issue_token({"kid": row.id, "role": row.role.value}, TOKEN_SECONDS)
        return token, row

    def _lookup(self, key: str) -> ApiKeyRow | None:
        claims = self.service.box.read_token(key) if looks_like_jwt(key) else None
        if claims is not None:
            kid = str(claims.get("kid"))
            return self._cached("kid:" + kid, lambda: self._by_id(kid))
        return self._cached(hash_api_key(key), lambda: self.catalog.find_api_key(key))

    def _by_id(self, key_id: str) -> ApiKeyRow | None:
        return next((r for r in self.catalog.list_api_keys() if r.id == key_id and r.revoked_at is None), None)

    def _cached(self, cache_key: str, load: Callable[[], Any]) -> ApiKeyRow | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(cache_key)
        if hit is not None and hit[0] >= now:
            return hit[1]
        row = load()
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[cache_key] = (now + CACHE_SECONDS, row)
        return row

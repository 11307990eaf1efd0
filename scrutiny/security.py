"""API keys (stored as hashes) and engine credentials (encrypted at rest).

Keys are 32 random bytes, so a single SHA-256 is the right hash: there is nothing to
brute-force, and verification stays a dictionary lookup on the hot path of the proxy.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from scrutiny.config import write_private_file

KEY_PREFIX = "scr_"


class Role(StrEnum):
    """What a key may do. ``logger`` can score and log through the proxy but read nothing."""

    ADMIN = "admin"
    VIEWER = "viewer"
    LOGGER = "logger"


ROLE_GRANTS: dict[Role, frozenset[str]] = {
    Role.ADMIN: frozenset({"read", "write", "log", "admin", "metrics"}),
    Role.VIEWER: frozenset({"read", "metrics"}),
    # a logger key may also be the one Prometheus scrapes the proxy with: metrics, no records
    Role.LOGGER: frozenset({"log", "metrics"}),
}


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_hint(key: str) -> str:
    """A recognisable, non-secret fragment of a key for listings."""
    return key[:8] + "…" + key[-4:]


class CredentialBox:
    """Encrypts engine credentials with Fernet; the key comes from settings or a 0600 key file."""

    def __init__(self, key: str | bytes) -> None:
        self._fernet = Fernet(key)
        raw = key if isinstance(key, bytes) else key.encode()
        self._mac_key = hashlib.sha256(b"scrutiny-binding-id:" + raw).digest()
        self._token_key = hashlib.sha256(b"scrutiny-access-token:" + raw).digest()

    @classmethod
    def from_settings(cls, secret_key: str | None, key_file: Path) -> CredentialBox:
        if secret_key:
            return cls(secret_key)
        if key_file.exists():
            return cls(key_file.read_text().strip())
        key = Fernet.generate_key().decode()
        write_private_file(key_file, key)
        return cls(key)

    def seal(self, credentials: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(orjson.dumps(credentials, option=orjson.OPT_SORT_KEYS))

    def open(self, token: bytes) -> dict[str, Any]:
        try:
            return orjson.loads(self._fernet.decrypt(token))
        except InvalidToken:
            raise RuntimeError(
                "engine credentials cannot be decrypted: the secret key (SCRUTINY_SECRET_KEY or secret.key) changed"
            ) from None

    def seal_bytes(self, data: bytes) -> bytes:
        """Encrypt and authenticate opaque bytes (a stored model: only what this server sealed is loaded)."""
        return self._fernet.encrypt(data)

    def open_bytes(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise RuntimeError(
                "stored data cannot be decrypted: the secret key (SCRUTINY_SECRET_KEY or secret.key) changed"
            ) from None

    def stable_id(self, *parts: Any) -> str:
        """A deterministic id for the same engine and credentials, keyed so it reveals nothing of them."""
        msg = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
        return hmac.new(self._mac_key, msg, hashlib.sha256).hexdigest()[:32]

    def issue_token(self, claims: dict[str, Any], ttl_seconds: int) -> str:
        """A signed JWT (HS256) with a numeric ``exp``: what OpenScale's token endpoints return.
        Its signing key is derived from the secret key, so a restart keeps tokens valid."""
        now = int(time.time())
        body = {**claims, "iat": now, "exp": now + ttl_seconds}
        return sign_jwt(body, self._token_key)

    def read_token(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this server issued and that has not expired, else None."""
        claims = verify_jwt(token, self._token_key)
        if claims is None or not isinstance(claims.get("exp"), int) or claims["exp"] <= time.time():
            return None
        return claims


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith(KEY_PREFIX)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_JWT_HEADER = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))


def sign_jwt(claims: dict[str, Any], key: bytes) -> str:
    signing_input = f"{_JWT_HEADER}.{_b64(orjson.dumps(claims))}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(sig)}"


def verify_jwt(token: str, key: bytes) -> dict[str, Any] | None:
    """The claims if the HS256 signature is ours (the header must be exactly ours), else None."""
    try:
        header, payload, sig = token.split(".")
        if header != _JWT_HEADER:
            return None
        expected = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(sig)):
            return None
        claims = orjson.loads(_unb64(payload))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        return None
    return claims if isinstance(claims, dict) else None

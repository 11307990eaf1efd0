"""Engine bindings: register an engine with its credentials, discover its deployments."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

import orjson

from scrutiny.engines import BindingConfig, Deployment, Engine, canonical_type, engine_class
from scrutiny.errors import InvalidInput
from scrutiny.store.catalog import BindingRow
from scrutiny.store.types import utcnow

if TYPE_CHECKING:
    from scrutiny.service import Service


class BindingService:
    def __init__(self, service: Service) -> None:
        self.service = service

    @property
    def catalog(self):  # type: ignore[no-untyped-def]
        return self.service.store.catalog

    def create(
        self,
        *,
        name: str,
        engine_type: str,
        credentials: dict[str, Any],
        request_headers: dict[str, str] | None = None,
        description: str | None = None,
    ) -> tuple[BindingRow, bool]:
        """Register an engine. The id is derived from the engine type and credentials, so binding
        the same engine twice returns the existing binding (``created`` is then False)."""
        etype = canonical_type(engine_type)
        cls = engine_class(etype)
        if not isinstance(credentials, dict):
            raise InvalidInput("credentials must be an object", field="credentials")
        try:  # they are sealed and hashed as JSON: an integer beyond 64 bits cannot be
            orjson.dumps(credentials)
        except TypeError as exc:
            raise InvalidInput(f"credentials cannot be stored: {exc}", field="credentials") from None
        cls.check_credentials(credentials)
        headers = {str(k): str(v) for k, v in (request_headers or {}).items()}
        public = {k: v for k, v in credentials.items() if k in cls.public_keys}
        secret = {k: v for k, v in credentials.items() if k not in cls.public_keys}
        binding_id = self.service.box.stable_id(etype, credentials)
        existing = self.catalog.find_binding(binding_id)
        if existing is not None:
            if existing.name != name or existing.description != description:
                self.catalog.update_binding(binding_id, name=name, description=description)
                self.service.engines.drop(binding_id)
            return self.catalog.get_binding(binding_id), False
        settings = {**public, "credential_keys": sorted(secret), "request_header_names": sorted(headers)}
        row = BindingRow(
            id=binding_id,
            name=name,
            engine_type=etype,
            description=description,
            settings=settings,
            secrets=self.service.box.seal({"credentials": secret, "request_headers": headers}),
            created_at=utcnow(),
        )
        self.catalog.insert_binding(row)
        return row, True

    def get(self, binding_id: str) -> BindingRow:
        return self.catalog.get_binding(binding_id)

    def list(self) -> builtins.list[BindingRow]:
        return self.catalog.list_bindings()

    def delete(self, binding_id: str) -> None:
        self.catalog.delete_binding(binding_id)
        self.service.engines.drop(binding_id)

    def config(self, row: BindingRow) -> BindingConfig:
        opened = self.service.box.open(row.secrets)
        public = {k: v for k, v in row.settings.items() if k not in ("credential_keys", "request_header_names")}
        s = self.service.settings
        return BindingConfig(
            id=row.id,
            name=row.name,
            engine_type=row.engine_type,
            settings=public,
            credentials={**public, **opened.get("credentials", {})},
            request_headers=opened.get("request_headers", {}),
            connect_timeout=s.engine_connect_timeout,
            read_timeout=s.engine_read_timeout,
            retries=s.engine_retries,
        )

    def engine(self, binding_id: str) -> Engine:
        return self.service.engines.get(self.config(self.get(binding_id)))

    def deployments(self, binding_id: str) -> builtins.list[Deployment]:
        return self.engine(binding_id).list_deployments()

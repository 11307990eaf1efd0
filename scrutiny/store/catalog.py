"""Reads and writes of the fixed tables: the data mart, API keys, bindings and subscriptions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from scrutiny.core.asset_properties import AssetProperties
from scrutiny.core.subscription import Layout, Subscription
from scrutiny.errors import Conflict, NotFound
from scrutiny.security import Role, hash_api_key, key_hint
from scrutiny.store import tables as T
from scrutiny.store.types import utcnow


@dataclass
class BindingRow:
    id: str
    name: str
    engine_type: str
    description: str | None
    settings: dict[str, Any]
    secrets: bytes
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """The public view: no credentials, only which credential keys are set."""
        return {
            "id": self.id,
            "name": self.name,
            "engine_type": self.engine_type,
            "description": self.description,
            "settings": {k: v for k, v in self.settings.items() if k != "credential_keys"},
            "credential_keys": self.settings.get("credential_keys", []),
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
        }


@dataclass
class ApiKeyRow:
    id: str
    name: str
    role: Role
    hint: str
    created_at: datetime
    revoked_at: datetime | None


class Catalog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- data mart ---------------------------------------------------------------------------
    def data_mart(self) -> dict[str, Any]:
        """The one data mart of this store, created on first use."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(T.data_marts)).first()
            if row is None:
                row_d = {"id": str(uuid.uuid4()), "name": "default", "created_at": utcnow()}
                conn.execute(T.data_marts.insert().values(**row_d))
                return row_d
            return dict(row._mapping)

    # -- API keys ----------------------------------------------------------------------------
    def add_api_key(self, key: str, *, name: str, role: Role) -> ApiKeyRow:
        row = {
            "id": uuid.uuid4().hex,
            "name": name,
            "role": role.value,
            "key_hash": hash_api_key(key),
            "hint": key_hint(key),
            "created_at": utcnow(),
            "revoked_at": None,
        }
        with self.engine.begin() as conn:
            existing = conn.execute(sa.select(T.api_keys.c.id).where(T.api_keys.c.key_hash == row["key_hash"])).first()
            if existing is not None:
                raise Conflict("this API key is already registered")
            conn.execute(T.api_keys.insert().values(**row))
        return self._key(row)

    def find_api_key(self, key: str) -> ApiKeyRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T.api_keys).where(
                    T.api_keys.c.key_hash == hash_api_key(key), T.api_keys.c.revoked_at.is_(None)
                )
            ).first()
        return self._key(dict(row._mapping)) if row else None

    def list_api_keys(self) -> list[ApiKeyRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(T.api_keys).order_by(T.api_keys.c.created_at)).all()
        return [self._key(dict(r._mapping)) for r in rows]

    def revoke_api_key(self, key_id: str) -> None:
        with self.engine.begin() as conn:
            res = conn.execute(T.api_keys.update().where(T.api_keys.c.id == key_id).values(revoked_at=utcnow()))
            if res.rowcount == 0:
                raise NotFound(f"API key {key_id} not found")

    def count_admin_keys(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(
                        T.api_keys.c.role == Role.ADMIN.value, T.api_keys.c.revoked_at.is_(None)
                    )
                ).scalar_one()
            )

    @staticmethod
    def _key(row: dict[str, Any]) -> ApiKeyRow:
        return ApiKeyRow(row["id"], row["name"], Role(row["role"]), row["hint"], row["created_at"], row["revoked_at"])

    # -- bindings ----------------------------------------------------------------------------
    def insert_binding(self, row: BindingRow) -> None:
        with self.engine.begin() as conn:
            conn.execute(T.bindings.insert().values(**row.__dict__))

    def update_binding(self, binding_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(T.bindings.update().where(T.bindings.c.id == binding_id).values(**values))

    def find_binding(self, binding_id: str) -> BindingRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(T.bindings).where(T.bindings.c.id == binding_id)).first()
        return BindingRow(**row._mapping) if row else None

    def get_binding(self, binding_id: str) -> BindingRow:
        row = self.find_binding(binding_id)
        if row is None:
            raise NotFound(f"binding {binding_id!r} not found")
        return row

    def list_bindings(self) -> list[BindingRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(T.bindings).order_by(T.bindings.c.created_at)).all()
        return [BindingRow(**r._mapping) for r in rows]

    def delete_binding(self, binding_id: str) -> None:
        with self.engine.begin() as conn:
            used = conn.execute(
                sa.select(sa.func.count()).where(T.subscriptions.c.binding_id == binding_id)
            ).scalar_one()
            if used:
                raise Conflict(f"binding {binding_id!r} has {used} subscription(s); delete them first")
            res = conn.execute(T.bindings.delete().where(T.bindings.c.id == binding_id))
            if res.rowcount == 0:
                raise NotFound(f"binding {binding_id!r} not found")

    # -- subscriptions -----------------------------------------------------------------------
    def insert_subscription(self, conn: sa.Connection, sub: Subscription) -> None:
        conn.execute(
            T.subscriptions.insert().values(
                id=sub.id,
                binding_id=sub.binding_id,
                deployment_id=sub.deployment_id,
                deployment=sub.deployment,
                asset=sub.asset,
                asset_properties=sub.properties.to_dict(),
                layout=sub.layout.to_dict(),
                training_statistics=sub.training_statistics,
                status=sub.status,
                created_at=sub.created_at,
                updated_at=sub.updated_at,
            )
        )

    def update_subscription(self, conn: sa.Connection, sub_id: str, **values: Any) -> None:
        if "layout" in values and isinstance(values["layout"], Layout):
            values["layout"] = values["layout"].to_dict()
        if "asset_properties" in values and isinstance(values["asset_properties"], AssetProperties):
            values["asset_properties"] = values["asset_properties"].to_dict()
        values["updated_at"] = utcnow()
        conn.execute(T.subscriptions.update().where(T.subscriptions.c.id == sub_id).values(**values))

    def find_subscription(self, sub_id: str, conn: sa.Connection | None = None) -> Subscription | None:
        q = sa.select(T.subscriptions).where(T.subscriptions.c.id == sub_id)
        if conn is not None:
            row = conn.execute(q).first()
        else:
            with self.engine.connect() as c:
                row = c.execute(q).first()
        return self._subscription(row._mapping) if row else None

    def get_subscription(self, sub_id: str, conn: sa.Connection | None = None) -> Subscription:
        sub = self.find_subscription(sub_id, conn)
        if sub is None:
            raise NotFound(f"subscription {sub_id!r} not found")
        return sub

    def list_subscriptions(self, binding_id: str | None = None) -> list[Subscription]:
        q = sa.select(T.subscriptions).order_by(T.subscriptions.c.created_at)
        if binding_id:
            q = q.where(T.subscriptions.c.binding_id == binding_id)
        with self.engine.connect() as conn:
            return [self._subscription(r._mapping) for r in conn.execute(q).all()]

    def delete_subscription(self, conn: sa.Connection, sub_id: str) -> None:
        conn.execute(T.subscriptions.delete().where(T.subscriptions.c.id == sub_id))

    @staticmethod
    def _subscription(m: Any) -> Subscription:
        return Subscription(
            id=m["id"],
            binding_id=m["binding_id"],
            deployment_id=m["deployment_id"],
            deployment=m["deployment"],
            asset=m["asset"],
            properties=AssetProperties.model_validate(m["asset_properties"]),
            layout=Layout.from_dict(m["layout"]),
            training_statistics=m["training_statistics"],
            status=m["status"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
        )

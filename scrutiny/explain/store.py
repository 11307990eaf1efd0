"""The ``explanations`` table: one row per explanation, with the record it explains and its cost.

A row is inserted ``in_progress`` before any scoring and updated once, at the end, to
``finished`` with its whole result or to ``error`` with a message: a failed explanation never
leaves part of a result behind, and never looks finished.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from scrutiny.errors import NotFound
from scrutiny.store.tables import metadata
from scrutiny.store.types import JSONType, UTCDateTime, utcnow

IN_PROGRESS = "in_progress"
FINISHED = "finished"
ERROR = "error"

explanations = sa.Table(
    "explanations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("subscription_id", sa.String(64), sa.ForeignKey("subscriptions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("scoring_id", sa.Text, nullable=True),  # the payload row id; None for an inline record
    sa.Column("method", sa.String(40), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("request", JSONType, nullable=False),  # options, source, seed
    sa.Column("record", JSONType, nullable=False),  # {"fields", "values"}: the one row explained
    sa.Column("result", JSONType, nullable=True),
    sa.Column("error", JSONType, nullable=True),
    sa.Column("scoring_calls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("scored_rows", sa.Integer, nullable=False, server_default="0"),
    sa.Column("timings", JSONType, nullable=True),
    sa.Column("owner", sa.String(64), nullable=True),  # the server process that runs it
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Index("ix_explanations_subscription_scoring", "subscription_id", "scoring_id"),
    sa.Index("ix_explanations_status", "status"),
)


@dataclass
class Explanation:
    id: str
    subscription_id: str
    scoring_id: str | None
    method: str
    status: str
    request: dict[str, Any]
    record: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    scoring_calls: int
    scored_rows: int
    timings: dict[str, Any] | None
    owner: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """The API view: the result's fields at the top level, beside the bookkeeping."""
        out: dict[str, Any] = dict(self.result or {})
        out.update(
            id=self.id,
            subscription_id=self.subscription_id,
            scoring_id=self.scoring_id,
            method=self.method,
            status=self.status,
            options=dict(self.request.get("options") or {}),
            record=self.record,
            scoring_calls=self.scoring_calls,
            scored_rows=self.scored_rows,
            timings=self.timings,
            created_at=_iso(self.created_at),
            started_at=_iso(self.started_at),
            finished_at=_iso(self.finished_at),
        )
        if self.error is not None:
            out["error"] = self.error
        return out


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts is not None else None


class ExplanationStore:
    def __init__(self, engine: Engine, begin_write: Any) -> None:
        self.engine = engine
        self.begin_write = begin_write

    def insert(self, row: Explanation) -> None:
        with self.begin_write() as conn:
            conn.execute(explanations.insert().values(**asdict(row)))

    def start(self, expl_id: str, owner: str) -> bool:
        """Mark a queued explanation as running; False when it is no longer in progress."""
        with self.begin_write() as conn:
            res = conn.execute(
                explanations.update()
                .where(explanations.c.id == expl_id, explanations.c.status == IN_PROGRESS)
                .values(started_at=utcnow(), owner=owner)
            )
        return bool(res.rowcount)

    def finish(
        self,
        expl_id: str,
        *,
        status: str,
        result: dict[str, Any] | None,
        error: dict[str, Any] | None,
        scoring_calls: int,
        scored_rows: int,
        timings: dict[str, Any],
    ) -> bool:
        """The one final update. Only an in-progress row changes (a row already marked as
        interrupted stays so); returns whether it did."""
        with self.begin_write() as conn:
            res = conn.execute(
                explanations.update()
                .where(explanations.c.id == expl_id, explanations.c.status == IN_PROGRESS)
                .values(
                    status=status,
                    result=result,
                    error=error,
                    scoring_calls=scoring_calls,
                    scored_rows=scored_rows,
                    timings=timings,
                    finished_at=utcnow(),
                )
            )
        return bool(res.rowcount)

    def interrupt(self, reason: str, *, owner_not: str | None = None, ids: list[str] | None = None) -> int:
        """Mark in-progress explanations as failed (all of them, those of other processes, or ``ids``)."""
        conds = [explanations.c.status == IN_PROGRESS]
        if owner_not is not None:
            conds.append(sa.or_(explanations.c.owner.is_(None), explanations.c.owner != owner_not))
        if ids is not None:
            if not ids:
                return 0
            conds.append(explanations.c.id.in_(ids))
        with self.begin_write() as conn:
            res = conn.execute(
                explanations.update()
                .where(*conds)
                .values(status=ERROR, error={"code": "interrupted", "message": reason}, finished_at=utcnow())
            )
        return int(res.rowcount or 0)

    def find(self, expl_id: str) -> Explanation | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(explanations).where(explanations.c.id == expl_id)).first()
        return Explanation(**row._mapping) if row is not None else None

    def get(self, sub_id: str | None, expl_id: str) -> Explanation:
        row = self.find(expl_id)
        if row is None or (sub_id is not None and row.subscription_id != sub_id):
            where = f" for subscription {sub_id!r}" if sub_id else ""
            raise NotFound(f"explanation {expl_id!r} not found{where}")
        return row

    def list(
        self,
        sub_id: str,
        *,
        scoring_ids: list[str] | None = None,
        method: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[int, list[Explanation]]:
        conds = [explanations.c.subscription_id == sub_id]
        if scoring_ids is not None:
            conds.append(explanations.c.scoring_id.in_(scoring_ids))
        if method:
            conds.append(explanations.c.method == method)
        if status:
            conds.append(explanations.c.status == status)
        with self.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(explanations).where(*conds)).scalar_one()
            rows = conn.execute(
                sa.select(explanations)
                .where(*conds)
                .order_by(explanations.c.created_at.desc(), explanations.c.id)
                .limit(limit)
                .offset(offset)
            ).all()
        return int(total), [Explanation(**r._mapping) for r in rows]

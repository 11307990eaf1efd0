"""Explaining transactions: find the record, run the explainer, store the explanation.

``create`` does everything that can fail fast (unknown subscription or transaction, no training
statistics, bad options or record) before anything is stored, then inserts the explanation
``in_progress``. ``run`` scores and fits, and makes the one final update: ``finished`` with
the whole result, or ``error`` with a message. The API runs explanations on a small thread
pool owned by this object and answers at once when they finish fast.

Restart: an explanation belongs to the server process that created it (``owner``). When a
server starts (``start()``), explanations still ``in_progress`` from another process are
marked ``error`` ("interrupted"): their worker is gone. A server stopping cancels queued
explanations the same way and lets running ones finish.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from scrutiny.core.scoring_format import ScoringRequest, parse_scoring_request
from scrutiny.core.subscription import PREDICTION_PROBABILITY, SCORING_ID, Subscription
from scrutiny.errors import InvalidInput, NotFound, ScrutinyError
from scrutiny.explain.contrastive import ContrastiveOptions, explain_contrastive
from scrutiny.explain.features import FeatureSpace
from scrutiny.explain.lime import LimeOptions, explain_lime
from scrutiny.explain.scoring import Scorer
from scrutiny.explain.store import ERROR, FINISHED, IN_PROGRESS, Explanation, ExplanationStore
from scrutiny.ingest.writer import PAYLOAD, table_columns, table_name
from scrutiny.store import records
from scrutiny.store.types import utcnow

if TYPE_CHECKING:
    from scrutiny.service import Service

log = logging.getLogger("scrutiny.explain")

LIME = "lime"
CONTRASTIVE = "contrastive"
BOTH = "lime+contrastive"  # OpenScale's explanation task with "cem": LIME, then contrastive
METHODS = (LIME, CONTRASTIVE, BOTH)
WORKERS = 2
_ROW_SUFFIX = re.compile(r"-(\d+)$")


class ExplanationService:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.store = ExplanationStore(service.store.engine, service.store.write)
        self.owner = uuid.uuid4().hex
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[str, Future[Explanation]] = {}
        self._lock = threading.Lock()

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> int:
        """Server start: explanations left in progress by a stopped server can never finish."""
        n = self.store.interrupt(
            "interrupted: the Scrutiny server that ran this explanation stopped before it finished; request it again",
            owner_not=self.owner,
        )
        if n:
            log.warning("marked %d explanation(s) left in progress by a previous server as interrupted", n)
        return n

    def close(self) -> None:
        """Cancel queued explanations (stored as interrupted) and wait for running ones."""
        with self._lock:
            pool, self._pool = self._pool, None
            futures, self._futures = self._futures, {}
        if pool is None:
            return
        pool.shutdown(wait=True, cancel_futures=True)
        cancelled = [eid for eid, fut in futures.items() if fut.cancelled()]
        if cancelled:
            self.store.interrupt(
                "interrupted: the Scrutiny server stopped before this explanation ran; request it again", ids=cancelled
            )

    # -- create --------------------------------------------------------------------------------
    def create(
        self,
        sub_id: str,
        *,
        scoring_id: str | None = None,
        record: Any = None,
        method: str = LIME,
        options: dict[str, Any] | None = None,
    ) -> Explanation:
        """Check everything, then store the explanation ``in_progress`` (nothing is scored yet)."""
        sub = self.service.subscriptions.get(sub_id)
        if method not in METHODS:
            raise InvalidInput(f"method must be one of {list(METHODS)}, not {method!r}", field="method")
        space = FeatureSpace.of(sub)
        if method == CONTRASTIVE and not sub.problem_type.classification:
            raise InvalidInput(
                "contrastive explanations are for classification models; this subscription is a regression, "
                "use method 'lime'",
                field="method",
            )
        if options is not None and not isinstance(options, dict):
            raise InvalidInput("options must be an object", field="options")
        opts = dict(options or {})
        if method in (LIME, BOTH):
            LimeOptions.parse({k: v for k, v in opts.items() if k != "contrastive"})
        if method == CONTRASTIVE:
            ContrastiveOptions.parse(opts)
        if method == BOTH:
            ContrastiveOptions.parse(opts.get("contrastive") or {})
        if (scoring_id is None) == (record is None):
            raise InvalidInput("give either scoring_id (a logged transaction) or record (inline)", field="scoring_id")
        logged: dict[str, Any] = {}
        if scoring_id is not None:
            if not isinstance(scoring_id, str) or not scoring_id:
                raise InvalidInput("scoring_id must be a non-empty string", field="scoring_id")
            row_id, values, logged = self.find_row(sub, scoring_id)
            source = "payload"
        else:
            values = self._inline(sub, space, record)
            source = "inline"
        space.check_row(values)
        if source == "inline":
            row_id = "record:" + hashlib.sha256(orjson.dumps(values, default=str)).hexdigest()[:32]
        expl = Explanation(
            id=str(uuid.uuid4()),
            subscription_id=sub.id,
            scoring_id=row_id if source == "payload" else None,
            method=method,
            status=IN_PROGRESS,
            request={"options": opts, "source": source, "row_id": row_id, "logged": logged or None},
            record={"fields": space.names, "values": [values]},
            result=None,
            error=None,
            scoring_calls=0,
            scored_rows=0,
            timings=None,
            owner=self.owner,
            created_at=utcnow(),
            started_at=None,
            finished_at=None,
        )
        self.store.insert(expl)
        return expl

    def find_row(self, sub: Subscription, scoring_id: str) -> tuple[str, list[Any], dict[str, Any]]:
        """The payload row ``scoring_id`` (``<record>-<n>``); a record id without its row suffix
        is accepted when the record has one row; then the transaction id column, if any."""
        layout = sub.layout
        name = table_name(layout, PAYLOAD)
        names = sub.feature_fields
        with self.service.store.engine.connect() as conn:
            if not layout.complete or not records.exists(conn, name):
                raise NotFound(f"subscription {sub.id!r} has no payload rows yet, so no transaction {scoring_id!r}")
            t = records.table(name, records.spec(table_columns(layout, PAYLOAD)))
            cols = [t.c[n] for n in names]
            out_cols = [c for c in (layout.prediction_column, PREDICTION_PROBABILITY) if c in t.c]
            q = sa.select(t.c[SCORING_ID], *cols, *[t.c[c] for c in out_cols])
            row = conn.execute(q.where(t.c[SCORING_ID] == scoring_id)).first()
            if row is None:
                found = conn.execute(
                    sa.select(t.c[SCORING_ID])
                    .where(t.c[SCORING_ID].startswith(scoring_id + "-", autoescape=True))
                    .limit(1000)
                ).scalars()
                ids = sorted(
                    (s for s in found if _ROW_SUFFIX.fullmatch(s[len(scoring_id) :])),
                    key=lambda s: int(s.rsplit("-", 1)[1]),
                )
                if len(ids) > 1:
                    raise InvalidInput(
                        f"transaction {scoring_id!r} has {len(ids)} rows: name one, e.g. {ids[0]!r}",
                        field="scoring_id",
                    )
                if ids:
                    row = conn.execute(q.where(t.c[SCORING_ID] == ids[0])).first()
            tx = sub.properties.transaction_id_field
            if row is None and tx and tx in t.c:
                rows = conn.execute(q.where(t.c[tx] == scoring_id).limit(2)).all()
                if len(rows) > 1:
                    raise InvalidInput(f"transaction id {scoring_id!r} names several rows: use a scoring_id")
                row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"no transaction {scoring_id!r} in the payload of subscription {sub.id!r}")
        m = row._mapping
        logged = {c: m[c] for c in out_cols}
        return str(m[SCORING_ID]), [m[n] for n in names], logged

    def row_ids(self, sub: Subscription, scoring_id: str) -> list[str]:
        """The payload row ids a (record or row) scoring id stands for, for listing explanations."""
        try:
            return [self.find_row(sub, scoring_id)[0]]
        except InvalidInput:  # several rows: all of them
            pass
        except NotFound:
            return [scoring_id]
        name = table_name(sub.layout, PAYLOAD)
        with self.service.store.engine.connect() as conn:
            t = records.table(name, records.spec(table_columns(sub.layout, PAYLOAD)))
            found = conn.execute(
                sa.select(t.c[SCORING_ID]).where(t.c[SCORING_ID].startswith(scoring_id + "-", autoescape=True))
            ).scalars()
            return [s for s in found if _ROW_SUFFIX.fullmatch(s[len(scoring_id) :])]

    def _inline(self, sub: Subscription, space: FeatureSpace, record: Any) -> list[Any]:
        """One row given as ``{"fields", "values"}``, checked like a scoring request."""
        if not isinstance(record, dict):
            raise InvalidInput('record must be an object {"fields": [...], "values": [[...]]}', field="record")
        request = parse_scoring_request(record)
        if len(request.values) != 1:
            raise InvalidInput(f"give exactly one row to explain, not {len(request.values)}", field="record.values")
        unknown = [f for f in request.fields if f not in space.names]
        if unknown:
            raise InvalidInput(f"the record has fields the model does not take: {unknown}", field="record.fields")
        missing = [n for n in space.names if n not in request.fields]
        if missing:
            raise InvalidInput(f"the record lacks features {missing}", field="record.fields")
        row = request.values[0]
        values = [row[request.fields.index(n)] for n in space.names]
        self.service.subscriptions.check_request(sub, ScoringRequest(space.names, [values]))
        return values

    # -- run -----------------------------------------------------------------------------------
    def submit(self, expl_id: str) -> Future[Explanation]:
        """Run in the background; the future resolves to the stored explanation."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="scrutiny-explain")
            fut = self._pool.submit(self.run, expl_id)
            self._futures[expl_id] = fut
            fut.add_done_callback(lambda _: self._forget(expl_id))
        return fut

    def _forget(self, expl_id: str) -> None:
        with self._lock:
            self._futures.pop(expl_id, None)

    def explain(
        self,
        sub_id: str,
        *,
        scoring_id: str | None = None,
        record: Any = None,
        method: str = LIME,
        options: dict[str, Any] | None = None,
    ) -> Explanation:
        """Create and run in the caller's thread (CLI, tests, benchmarks)."""
        expl = self.create(sub_id, scoring_id=scoring_id, record=record, method=method, options=options)
        return self.run(expl.id)

    def run(self, expl_id: str) -> Explanation:
        expl = self.store.get(None, expl_id)
        if not self.store.start(expl_id, self.owner):
            return self.store.get(None, expl_id)  # interrupted or already run
        t0 = time.perf_counter()
        queued_ms = (utcnow() - expl.created_at).total_seconds() * 1000.0
        scorer: Scorer | None = None
        result: dict[str, Any] | None = None
        error: dict[str, Any] | None = None
        try:
            sub = self.service.subscriptions.get(expl.subscription_id)
            space = FeatureSpace.of(sub)
            scorer = Scorer(self.service, sub)
            result = self._explain(expl, sub, space, scorer)
        except ScrutinyError as exc:
            error = {**exc.to_dict(), "http_status": exc.status}
        except Exception as exc:  # a bug must still leave a clear, final state
            log.exception("explanation %s failed", expl_id)
            error = {"code": "internal_error", "message": f"unexpected error: {exc.__class__.__name__}: {exc}"}
            error["http_status"] = 500
        timings = {
            "queued_ms": round(max(queued_ms, 0.0), 3),
            "total_ms": round((time.perf_counter() - t0) * 1000.0, 3),
            "scoring_ms": round((scorer.seconds if scorer else 0.0) * 1000.0, 3),
        }
        if result is not None:
            timings.update({f"{k}_ms": v for k, v in (result.pop("timings_ms", None) or {}).items()})
        self.store.finish(
            expl_id,
            status=FINISHED if error is None else ERROR,
            result=result if error is None else None,
            error=error,
            scoring_calls=scorer.calls if scorer else 0,
            scored_rows=scorer.rows if scorer else 0,
            timings=timings,
        )
        return self.store.get(None, expl_id)

    def _explain(self, expl: Explanation, sub: Subscription, space: FeatureSpace, scorer: Scorer) -> dict[str, Any]:
        values = expl.record["values"][0]
        opts = dict(expl.request.get("options") or {})
        row_id = str(expl.request.get("row_id") or expl.id)
        result: dict[str, Any]
        if expl.method == CONTRASTIVE:
            copts = ContrastiveOptions.parse(opts)
            scorer.deadline = time.monotonic() + copts.time_budget_s
            result = explain_contrastive(space, values, scorer, copts)
        else:
            lopts = LimeOptions.parse({k: v for k, v in opts.items() if k != "contrastive"})
            scorer.deadline = time.monotonic() + lopts.time_budget_s
            result = explain_lime(space, values, scorer, lopts, row_id)
            if expl.method == BOTH:
                result["calls_lime"] = scorer.calls
                if sub.problem_type.classification:
                    copts = ContrastiveOptions.parse(opts.get("contrastive") or {})
                    scorer.deadline = time.monotonic() + copts.time_budget_s
                    contrastive = explain_contrastive(space, values, scorer, copts)
                    for key in ("pertinent_positive", "pertinent_negative", "base_values", "base_prediction"):
                        result[key] = contrastive[key]
                    timings = result.setdefault("timings_ms", {})
                    timings.update({f"contrastive_{k}": v for k, v in contrastive["timings_ms"].items()})
                else:
                    result["contrastive_skipped"] = "contrastive explanations are for classification models"
        logged = expl.request.get("logged") or {}
        if logged:
            prediction = logged.get(sub.layout.prediction_column)
            result["logged_prediction"] = prediction
            result["logged_probability"] = logged.get(PREDICTION_PROBABILITY)
            result["prediction_changed"] = prediction is not None and not _same_prediction(
                prediction, result.get("prediction")
            )
        return result

    # -- read ----------------------------------------------------------------------------------
    def get(self, sub_id: str | None, expl_id: str) -> Explanation:
        return self.store.get(sub_id, expl_id)

    def list(
        self,
        sub_id: str,
        *,
        scoring_id: str | None = None,
        method: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[int, list[Explanation]]:
        sub = self.service.subscriptions.get(sub_id)
        ids = self.row_ids(sub, scoring_id) if scoring_id else None
        return self.store.list(sub.id, scoring_ids=ids, method=method, status=status, limit=limit, offset=offset)

    def find_subscription_of(self, scoring_id: str) -> Subscription:
        """The subscription whose payload holds ``scoring_id`` (OpenScale's task API names no subscription)."""
        for sub in self.service.subscriptions.list():
            try:
                self.find_row(sub, scoring_id)
            except NotFound:
                continue
            except InvalidInput:
                return sub
            return sub
        raise NotFound(f"no subscription has a payload row {scoring_id!r}")


def _same_prediction(logged: Any, now: Any) -> bool:
    """A regression prediction read back from the data mart may differ in its last bits."""
    if isinstance(logged, (int, float)) and isinstance(now, (int, float)) and not isinstance(logged, bool):
        return math.isclose(float(logged), float(now), rel_tol=1e-9, abs_tol=1e-12)
    return bool(logged == now)

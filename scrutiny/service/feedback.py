"""Feedback logging: labelled rows, joined to the prediction they judge, stored for the quality monitor.

A row that carries the ``scoring_id`` of a logged payload row takes that row's features and
logged prediction (and is stored under the same id, so ``feedback.scoring_id = payload.scoring_id``
joins them). A row with features alone is scored through the engine as internal traffic (never
logged as payload), as OpenScale does for engines whose outputs cannot be joined. Validation and
idempotency follow payload logging: a batch is all or nothing (unless ``on_error=continue``),
errors name the row and the column, and a row whose id is already stored is skipped.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from scrutiny.core.outputs import normalize_rows
from scrutiny.core.schema import Kind
from scrutiny.core.scoring_format import ScoringRequest
from scrutiny.core.subscription import ASSET_REVISION, DEPLOYMENT_ID, PREDICTION_PROBABILITY, Subscription
from scrutiny.errors import InvalidInput, NotFound
from scrutiny.ingest.batch import RecordBatch, pylist
from scrutiny.ingest.columns import convert
from scrutiny.ingest.feedback import (
    FEEDBACK_ID,
    SCORING_ID,
    TIMESTAMP,
    FeedbackTable,
    from_csv,
    from_json,
    split_known,
)
from scrutiny.ingest.payloads import parse_timestamp
from scrutiny.ingest.writer import FEEDBACK, PAYLOAD, write_batch

if TYPE_CHECKING:
    from scrutiny.service import Service

MAX_ERRORS = 100


@dataclass
class FeedbackResult:
    stored: int
    duplicates: int
    records: int
    linked: int  # rows joined to a logged payload row
    scored: int  # rows scored through the engine
    ignored_fields: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)  # on_error=continue: rows left out

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class FeedbackService:
    def __init__(self, service: Service) -> None:
        self.service = service

    # -- entry points --------------------------------------------------------------------------
    def store(
        self,
        sub_id: str | Subscription,
        body: Any,
        *,
        content_type: str = "application/json",
        header: bool | None = None,
        delimiter: str = ",",
        on_error: str = "stop",
        now: datetime | None = None,
    ) -> FeedbackResult:
        sub = sub_id if isinstance(sub_id, Subscription) else self.service.subscriptions.get(sub_id)
        features, label = self._names(sub)
        if content_type == "text/csv":
            text = body.decode("utf-8-sig") if isinstance(body, bytes) else str(body)
            table = from_csv(text, features, label, header=header, delimiter=delimiter)
        else:
            table = from_json(body, features, label)
        if on_error not in ("stop", "continue"):
            raise InvalidInput("on_error must be stop or continue", field="on_error")
        return self.store_table(sub, table, on_error=on_error, now=now)

    def store_openscale(self, data_mart_id: str, body: Any) -> FeedbackResult:
        """OpenScale v1 ``feedback_payloads``: one object naming its binding and subscription."""
        self.service.check_data_mart(data_mart_id)
        if not isinstance(body, dict):
            raise InvalidInput("the body must be one object with binding_id, subscription_id, fields and values")
        sid, bid = body.get("subscription_id"), body.get("binding_id")
        if not isinstance(sid, str) or not sid:
            raise InvalidInput("missing subscription_id", field="subscription_id")
        sub = self.service.store.catalog.find_subscription(sid)
        if sub is None:
            raise NotFound(f"subscription {sid!r} not found", field="subscription_id")
        if bid is not None and bid != sub.binding_id:
            raise NotFound(f"binding {bid!r} has no subscription {sid!r}", field="binding_id")
        return self.store(sub, body)

    def check_path(self, data_mart_id: str, binding_id: str, sub_id: str) -> Subscription:
        self.service.check_data_mart(data_mart_id)
        sub = self.service.subscriptions.get(sub_id)
        if sub.binding_id != binding_id:
            raise NotFound(f"binding {binding_id!r} has no subscription {sub_id!r}")
        return sub

    # -- the work ---------------------------------------------------------------------------------
    def _names(self, sub: Subscription) -> tuple[list[str], str]:
        label = sub.layout.label_column or sub.properties.label_column
        if not label:
            raise InvalidInput(
                "the subscription has no label_column: set asset_properties.label_column to log feedback",
                field="label_column",
            )
        if not sub.layout.complete:
            raise InvalidInput("the subscription has no schema yet; log a payload record first")
        return sub.feature_fields, label

    def store_table(
        self, sub: Subscription, table: FeedbackTable, *, on_error: str = "stop", now: datetime | None = None
    ) -> FeedbackResult:
        features, label = self._names(sub)
        cols, ignored = split_known(table, features, label)
        if table.n == 0:
            raise InvalidInput("the batch holds no feedback rows")
        if label not in cols:
            raise InvalidInput("missing the label column", field=label)
        errors: list[dict[str, Any]] = []
        keep = np.ones(table.n, dtype=bool)
        while True:
            try:
                batch, linked, scored = self._batch(sub, cols, keep, now or datetime.now(UTC))
                break
            except InvalidInput as exc:
                row = exc.context.get("row")
                if on_error != "continue" or row is None or len(errors) >= MAX_ERRORS:
                    raise
                errors.append({"row": row, "field": exc.context.get("field"), "message": exc.reason})
                keep[np.flatnonzero(keep)[int(row) - 1]] = False
                if not keep.any():
                    raise InvalidInput(
                        "every feedback row was rejected", row=row, field=exc.context.get("field")
                    ) from None
        result = write_batch(self.service.store, sub, batch, sub.layout, FEEDBACK)
        return FeedbackResult(result.stored, result.duplicates, table.n, linked, scored, ignored, errors)

    def _batch(
        self, sub: Subscription, cols: dict[str, list[Any]], keep: np.ndarray, now: datetime
    ) -> tuple[RecordBatch, int, int]:
        """Typed columns of the kept rows, joined or scored; rows are reported 1-based among kept rows."""
        idx = np.flatnonzero(keep)
        n = len(idx)
        col = {k: [v[i] for i in idx] for k, v in cols.items()}
        layout = sub.layout
        label_name = layout.label_column or sub.properties.label_column
        assert label_name is not None

        def at(pos: int) -> tuple[int | None, int | None]:
            return None, pos + 1

        # label: the prediction's type, one of the model's labels
        pred_kind = layout.prediction_kind or Kind.STR
        raw_label = col[label_name]
        missing = [i for i, v in enumerate(raw_label) if v is None]
        if missing:
            raise InvalidInput("the label is missing", row=missing[0] + 1, field=label_name)
        labels = convert(_from_text(raw_label, pred_kind), pred_kind, label_name, at)
        if sub.problem_type.classification and layout.labels:
            allowed = list(layout.labels)
            known = np.isin(labels.astype(object), np.asarray(allowed, dtype=object))
            if not known.all():
                bad = int(np.flatnonzero(~known)[0])
                raise InvalidInput(
                    f"label {raw_label[bad]!r} is not one of the model's labels {allowed}",
                    row=bad + 1,
                    field=label_name,
                )

        # row ids: the payload row's id when linked, the client's feedback_id, or a new one
        sids = col.get(SCORING_ID, [None] * n)
        fids = col.get(FEEDBACK_ID, [None] * n)
        for name, values in ((SCORING_ID, sids), (FEEDBACK_ID, fids)):
            for i, v in enumerate(values):
                if v is not None and (not isinstance(v, str) or not v or len(v) > 200):
                    raise InvalidInput(
                        f"{name} must be a non-empty string of at most 200 characters", row=i + 1, field=name
                    )
        linked = np.array([s is not None for s in sids], dtype=bool)
        ids = np.empty(n, dtype=object)
        client = np.zeros(n, dtype=bool)
        for i in range(n):
            if sids[i] is not None:
                ids[i], client[i] = sids[i], True
            elif fids[i] is not None:
                ids[i], client[i] = fids[i], True
            else:
                ids[i] = f"fb-{uuid.uuid4()}"
        ts = np.full(n, np.datetime64(now.astimezone(UTC).replace(tzinfo=None), "us"))
        if TIMESTAMP in col:
            for i, v in enumerate(col[TIMESTAMP]):
                if v is not None:
                    ts[i] = np.datetime64(parse_timestamp(v, None).replace(tzinfo=None), "us")

        columns: dict[str, np.ndarray] = {}
        kinds: dict[str, Kind] = {}
        n_classes = len(layout.labels) if layout.labels else 0
        probability = np.full((n, n_classes), np.nan) if layout.probability_column and n_classes else None
        prediction = np.full(n, np.nan) if pred_kind in (Kind.INT, Kind.FLOAT) else np.full(n, None, dtype=object)
        pred_prob = np.full(n, np.nan)
        for c in layout.features:
            columns[c.name] = np.full(n, np.nan) if c.kind in (Kind.INT, Kind.FLOAT) else np.full(n, None, dtype=object)
            kinds[c.name] = c.kind

        # linked rows: features and prediction as logged
        if linked.any():
            self._join(sub, ids, linked, columns, prediction, probability, pred_prob)
        # the others: features as given, scored through the engine
        unlinked = np.flatnonzero(~linked)
        if unlinked.size:
            self._score(sub, col, unlinked, columns, prediction, probability, pred_prob, at)

        columns[label_name] = labels
        kinds[label_name] = pred_kind
        columns[layout.prediction_column] = prediction
        kinds[layout.prediction_column] = pred_kind
        if probability is not None:
            columns[PREDICTION_PROBABILITY] = pred_prob
            kinds[PREDICTION_PROBABILITY] = Kind.FLOAT
        columns[DEPLOYMENT_ID] = np.full(n, sub.deployment_id, dtype=object)
        kinds[DEPLOYMENT_ID] = Kind.STR
        columns[ASSET_REVISION] = np.full(n, sub.properties.asset_revision, dtype=object)
        kinds[ASSET_REVISION] = Kind.STR
        batch = RecordBatch(
            ids=ids, timestamps=ts, columns=columns, kinds=kinds, probability=probability, client_ids=client
        )
        return batch, int(linked.sum()), int(unlinked.size)

    def _join(
        self,
        sub: Subscription,
        ids: np.ndarray,
        linked: np.ndarray,
        columns: dict[str, np.ndarray],
        prediction: np.ndarray,
        probability: np.ndarray | None,
        pred_prob: np.ndarray,
    ) -> None:
        from scrutiny.monitors.run.reader import read_by_ids

        want = ids[linked].tolist()
        layout = sub.layout
        with self.service.store.engine.connect() as conn:
            found = read_by_ids(
                conn,
                sub,
                PAYLOAD,
                want,
                columns=[
                    *layout.features.names,
                    layout.prediction_column,
                    PREDICTION_PROBABILITY,
                    *([layout.probability_column] if layout.probability_column else []),
                ],
            )
        pos = {sid: i for i, sid in enumerate(found.ids.tolist())} if found is not None else {}
        rows = np.flatnonzero(linked)
        src = np.array([pos.get(s, -1) for s in want], dtype=np.int64)
        if (src < 0).any():
            bad = int(np.flatnonzero(src < 0)[0])
            raise InvalidInput(
                f"scoring_id {want[bad]!r} is not a logged payload row (row ids look like '<scoring_id>-1')",
                row=int(rows[bad]) + 1,
                field=SCORING_ID,
            )
        assert found is not None
        for name in layout.features.names:
            columns[name][rows] = found.columns[name][src]
        prediction[rows] = found.columns[layout.prediction_column][src]
        if PREDICTION_PROBABILITY in found.columns:
            pred_prob[rows] = found.columns[PREDICTION_PROBABILITY][src]
        if (
            probability is not None
            and found.probability is not None
            and found.probability.shape[1] == probability.shape[1]
        ):
            probability[rows] = found.probability[src]

    def _score(
        self,
        sub: Subscription,
        col: dict[str, list[Any]],
        rows: np.ndarray,
        columns: dict[str, np.ndarray],
        prediction: np.ndarray,
        probability: np.ndarray | None,
        pred_prob: np.ndarray,
        at: Any,
    ) -> None:
        layout = sub.layout
        names = layout.features.names
        for name in names:
            if name not in col:
                raise InvalidInput(
                    "missing feature field: a feedback row without a scoring_id needs every feature to be scored",
                    row=int(rows[0]) + 1,
                    field=name,
                )
        pick = rows.tolist()

        def locate(pos: int) -> tuple[int | None, int | None]:
            return None, pick[pos] + 1

        typed = []
        for c in layout.features:
            values = _from_text([col[c.name][i] for i in pick], c.kind)
            arr = convert(values, c.kind, c.name, locate)
            columns[c.name][rows] = arr
            typed.append(pylist(arr, c.kind))
        request = ScoringRequest(fields=list(names), values=[list(r) for r in zip(*typed, strict=True)])
        response = self.service.subscriptions.score_request(sub, request, internal=True)
        out = normalize_rows(
            response.fields,
            response.values,
            classification=sub.problem_type.classification,
            labels=layout.labels,
            prediction_field=sub.properties.prediction_field,
            probability_fields=sub.properties.probability_columns,
        )
        if len(out.prediction) != len(pick):
            raise InvalidInput(f"the engine returned {len(out.prediction)} predictions for {len(pick)} rows")
        pred_kind = layout.prediction_kind or Kind.STR
        prediction[rows] = convert(
            out.prediction,  # type: ignore[arg-type]
            pred_kind,
            layout.prediction_column,
            locate,
        )
        if probability is not None and out.probability is not None:
            probability[rows] = out.probability
            pred_prob[rows] = out.prediction_probability


def _from_text(values: list[Any], kind: Kind) -> list[Any]:
    """CSV cells arrive as text: booleans are parsed here (numbers are parsed by ``convert``)."""
    if kind is not Kind.BOOL:
        return values
    table = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
    return [table.get(v.strip().lower(), v) if isinstance(v, str) else v for v in values]

"""The drift archive of a subscription: the accuracy detector and the consistency constraints.

Learned from the training data once, stored versioned per subscription (``drift_archives``),
and rebuilt only when what they were learned from changes: the training rows (their content
digest), the schema, the labels, or the model behind the deployment (its asset revision).
Thresholds and windows change without retraining. The archive holds a fitted scikit-learn
model, so it is pickled, and sealed with the server's secret key: a row that this server did
not write (or that was altered) is never unpickled.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import sqlalchemy as sa

from scrutiny.errors import InvalidInput, NotFound, ScrutinyError
from scrutiny.monitors.builtin.drift import constraints as cons
from scrutiny.monitors.builtin.drift import detector as det
from scrutiny.monitors.builtin.drift.frames import frame_columns
from scrutiny.store.tables import metadata
from scrutiny.store.types import JSONType, UTCDateTime, utcnow

if TYPE_CHECKING:
    import pandas as pd

    from scrutiny.core.subscription import Subscription
    from scrutiny.service import Service

log = logging.getLogger("scrutiny.monitors.builtin.drift")

ARCHIVE_FORMAT = 1  # bump when what an archive holds, or how it is learned, changes
KEEP_VERSIONS = 3

drift_archives = sa.Table(
    "drift_archives",
    metadata,
    sa.Column(
        "subscription_id", sa.String(64), sa.ForeignKey("subscriptions.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("summary", JSONType, nullable=False),
    sa.Column("archive", sa.LargeBinary, nullable=False),
)


@dataclass
class DriftArchive:
    fingerprint: str
    detector: det.AccuracyDetector | None
    consistency: cons.ConsistencyModel | None
    summary: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    created_at: datetime | None = None

    def to_bytes(self) -> bytes:
        state = {
            "format": ARCHIVE_FORMAT,
            "detector": self.detector.to_state() if self.detector else None,
            "consistency": self.consistency.to_dict() if self.consistency else None,
        }
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data: bytes, *, fingerprint: str, summary: dict[str, Any], version: int) -> DriftArchive:
        state = pickle.loads(data)  # sealed by this server: see ``load``
        return cls(
            fingerprint=fingerprint,
            detector=det.AccuracyDetector.from_state(state["detector"]) if state.get("detector") else None,
            consistency=cons.ConsistencyModel.from_dict(state["consistency"]) if state.get("consistency") else None,
            summary=summary,
            version=version,
        )


def fingerprint(sub: Subscription, *, train_detector: bool = True) -> str:
    """What the archive depends on. Training data enters through its content digest."""
    stats = sub.training_statistics or {}
    data = stats.get("data_hash") or hashlib.sha256(orjson.dumps(stats, option=orjson.OPT_SORT_KEYS)).hexdigest()
    body = {
        "format": ARCHIVE_FORMAT,
        "data": data,
        "features": sub.layout.features.to_list(),
        "labels": sub.labels,
        "label_column": sub.properties.label_column,
        "problem_type": sub.problem_type.value,
        "deployment": sub.deployment_id,
        "asset_revision": sub.properties.asset_revision,
        "detector": bool(train_detector),
    }
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


# -- learning ---------------------------------------------------------------------------------
def learn(
    sub: Subscription,
    frame: pd.DataFrame,
    *,
    scored: tuple[np.ndarray, np.ndarray] | None,
    seed: int = 0,
    train_detector: bool = True,
) -> DriftArchive:
    """Learn the archive from training rows; ``scored`` is the model's (prediction, probability)
    for each row (None: no detector)."""
    columns = frame_columns(frame, sub.layout.features)
    rows = len(frame)
    consistency = cons.learn(
        columns, rows, feature_fields=sub.feature_fields, categorical_fields=sub.categorical_fields, seed=seed
    )
    summary: dict[str, Any] = {
        "training_rows": rows,
        "constraints": len(consistency.constraints),
        "constraint_kinds": _kinds(consistency),
    }
    detector = None
    label = sub.properties.label_column
    if train_detector and scored is not None and label and label in frame.columns:
        prediction, probability = scored
        categorical = set(sub.categorical_fields)
        detector = det.train(
            columns,
            rows,
            truth=frame[label].to_numpy(dtype=object),
            prediction=prediction,
            probability=probability,
            numeric=[f for f in sub.feature_fields if f not in categorical],
            categorical=[f for f in sub.feature_fields if f in categorical],
            labels=list(sub.labels or []),
            seed=seed,
        )
        summary["detector"] = detector.summary()
    return DriftArchive(fingerprint(sub, train_detector=train_detector), detector, consistency, summary)


def _kinds(model: cons.ConsistencyModel) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in model.constraints:
        out[c.kind] = out.get(c.kind, 0) + 1
    return out


def score_training(service: Service, sub: Subscription, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The deployed model's (prediction, class probabilities) for every training row, in one
    batched internal scoring call (the engine adapter splits it only if the engine's limit requires)."""
    from scrutiny.core.outputs import normalize_rows
    from scrutiny.core.scoring_format import ScoringRequest
    from scrutiny.service.subscriptions import frame_column

    features = sub.feature_fields
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise InvalidInput(f"the training data lacks feature columns {missing}", field="training_data")
    cols = [frame_column(frame[f], sub.layout.features.get(f).kind) for f in features]  # type: ignore[union-attr]
    request = ScoringRequest(list(features), [list(r) for r in zip(*cols, strict=True)])
    response = service.subscriptions.score_request(sub, request, internal=True)
    out = normalize_rows(
        response.fields,
        response.values,
        classification=True,
        labels=sub.labels,
        prediction_field=sub.properties.prediction_field,
        probability_fields=sub.properties.probability_columns,
    )
    if out.probability is None:
        raise InvalidInput(
            "the model returns no class probabilities; the accuracy drift detector needs them", field="probability"
        )
    if len(out.prediction) != len(frame):
        raise InvalidInput(f"the engine returned {len(out.prediction)} rows for {len(frame)} training rows")
    return out.prediction, out.probability


def build(service: Service, sub: Subscription, *, train_detector: bool = True, seed: int = 0) -> DriftArchive:
    """Learn the archive of a subscription from its stored training rows (scoring them if needed)."""
    try:
        frame = service.subscriptions.training_frame(sub.id)
    except NotFound:
        raise InvalidInput(
            "drift needs the subscription's training data (give training_data when subscribing, "
            "or upload it to /v1/subscriptions/{id}/training_data)",
            field="training_data",
        ) from None
    scored = None
    error = None
    if train_detector and sub.problem_type.classification and sub.properties.label_column:
        try:
            scored = score_training(service, sub, frame)
        except ScrutinyError as exc:  # the engine is down or answers badly: keep the rest, retry later
            error = f"scoring the training data failed: {exc.message}"
            log.warning("drift detector of %s not trained: %s", sub.id, error)
    out = learn(sub, frame, scored=scored, seed=seed, train_detector=train_detector)
    if error is not None:
        out.summary["detector_error"] = error
    return out


# -- storage ----------------------------------------------------------------------------------
def save(service: Service, sub_id: str, archive: DriftArchive) -> DriftArchive:
    """Store as the next version (older ones beyond ``KEEP_VERSIONS`` are dropped)."""
    sealed = service.box.seal_bytes(archive.to_bytes())
    t = drift_archives.c
    with service.store.write() as conn:
        latest = conn.execute(sa.select(sa.func.max(t.version)).where(t.subscription_id == sub_id)).scalar()
        version = int(latest or 0) + 1
        now = utcnow()
        conn.execute(
            drift_archives.insert().values(
                subscription_id=sub_id,
                version=version,
                fingerprint=archive.fingerprint,
                created_at=now,
                summary=archive.summary,
                archive=sealed,
            )
        )
        conn.execute(drift_archives.delete().where(t.subscription_id == sub_id, t.version <= version - KEEP_VERSIONS))
    archive.version, archive.created_at = version, now
    return archive


def load(service: Service, sub_id: str) -> DriftArchive | None:
    """The newest stored archive, or None."""
    t = drift_archives.c
    with service.store.engine.connect() as conn:
        row = conn.execute(
            sa.select(drift_archives).where(t.subscription_id == sub_id).order_by(t.version.desc()).limit(1)
        ).first()
    if row is None:
        return None
    data = service.box.open_bytes(bytes(row.archive))
    archive = DriftArchive.from_bytes(data, fingerprint=row.fingerprint, summary=row.summary, version=row.version)
    archive.created_at = row.created_at
    return archive


_cache: dict[str, DriftArchive] = {}
RETRY_AFTER = timedelta(minutes=15)


def _retry(archive: DriftArchive) -> bool:
    """An archive learned while the engine failed is learned again, at most every 15 minutes."""
    if "detector_error" not in archive.summary or archive.created_at is None:
        return False
    return utcnow() - archive.created_at >= RETRY_AFTER


def ensure(service: Service, sub: Subscription, *, train_detector: bool = True) -> tuple[DriftArchive, bool]:
    """The subscription's current archive, learned and stored first if there is none or what it
    was learned from changed. Returns (archive, whether it was just built)."""
    want = fingerprint(sub, train_detector=train_detector)
    hit = _cache.get(sub.id)
    if hit is not None and hit.fingerprint == want and not _retry(hit):
        return hit, False
    stored = load(service, sub.id)
    if stored is not None and stored.fingerprint == want and not _retry(stored):
        _cache[sub.id] = stored
        return stored, False
    return relearn(service, sub, train_detector=train_detector), True


def relearn(service: Service, sub: Subscription, *, train_detector: bool = True) -> DriftArchive:
    """Learn the archive now and store it as the next version."""
    log.info("learning the drift archive of subscription %s", sub.id)
    archive = save(service, sub.id, build(service, sub, train_detector=train_detector))
    _cache[sub.id] = archive
    return archive

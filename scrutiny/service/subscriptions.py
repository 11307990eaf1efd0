"""Subscriptions: attach monitoring to a deployment, and score it in the common format."""

from __future__ import annotations

import builtins
import hashlib
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from scrutiny.core.asset_properties import AssetProperties
from scrutiny.core.outputs import normalize_rows
from scrutiny.core.schema import Kind, Schema
from scrutiny.core.scoring_format import ScoringRequest, parse_scoring_request
from scrutiny.core.subscription import PREDICTION_PROBABILITY, Layout, Subscription, kind_of_labels
from scrutiny.core.training_stats import compute_statistics, read_training_data, training_labels
from scrutiny.engines import Deployment, Engine, ModelContext
from scrutiny.errors import Conflict, InvalidInput, NotFound
from scrutiny.ingest import writer
from scrutiny.ingest.columns import convert
from scrutiny.store import bulk, records
from scrutiny.store.types import utcnow

if TYPE_CHECKING:
    import pandas as pd

    from scrutiny.service import Service


def training_table(sub_id: str) -> str:
    return f"training_{sub_id.replace('-', '')}"


CACHE_SECONDS = 5.0


class SubscriptionService:
    def __init__(self, service: Service) -> None:
        self.service = service
        self._cache: dict[str, tuple[float, Subscription]] = {}

    def cached(self, sub_id: str) -> Subscription:
        """The subscription from a short-lived cache (hot paths: payload logging, the proxy).
        Writers re-read it inside their transaction whenever its layout must change."""
        now = time.monotonic()
        hit = self._cache.get(sub_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        sub = self.get(sub_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[sub_id] = (now + CACHE_SECONDS, sub)
        return sub

    def forget(self, sub_id: str) -> None:
        self._cache.pop(sub_id, None)

    @property
    def catalog(self):  # type: ignore[no-untyped-def]
        return self.service.store.catalog

    # -- create ------------------------------------------------------------------------------
    def create(
        self,
        *,
        binding_id: str,
        asset_properties: dict[str, Any],
        deployment_id: str | None = None,
        deployment: dict[str, Any] | None = None,
        training_data: dict[str, Any] | None = None,
        training_frame: pd.DataFrame | None = None,
        asset: dict[str, Any] | None = None,
        sub_id: str | None = None,
    ) -> Subscription:
        """Subscribe a discovered deployment (``deployment_id``) or a scoring URL given by hand
        (``deployment={"name", "scoring_url"}``, the individual scoring endpoint mode). ``sub_id``
        is the client's own id (OpenScale v1 clients choose it); by default a new uuid4."""
        binding = self.service.bindings.get(binding_id)
        engine = self.service.bindings.engine(binding.id)
        dep = self._deployment(engine, deployment_id, deployment)
        props = self._properties(dep, asset_properties)
        frame = training_frame
        if frame is None and training_data:
            if not isinstance(training_data, dict):
                raise InvalidInput("training_data must be an object with a 'path'", field="training_data")
            frame = read_training_data(training_data.get("path"), fmt=training_data.get("format"))
        if sub_id is not None:
            self._check_new_id(sub_id)
        sub_id = sub_id or str(uuid.uuid4())
        layout, props, stats = self._layout(sub_id, props, frame)
        now = utcnow()
        sub = Subscription(
            id=sub_id,
            binding_id=binding.id,
            deployment_id=dep.id,
            deployment=self.seal_deployment(dep),
            asset={**dep.asset, **(asset or {})},
            properties=props,
            layout=layout,
            training_statistics=stats,
            status="active",
            created_at=now,
            updated_at=now,
        )
        with self.service.store.write() as conn:
            self.catalog.insert_subscription(conn, sub)
            if layout.complete:
                writer.ensure_tables(conn, layout)
            if frame is not None:
                self._store_training_rows(conn, sub, frame)
        return sub

    def _check_new_id(self, sub_id: str) -> None:
        if not isinstance(sub_id, str) or not 1 <= len(sub_id) <= 64 or not sub_id.replace("-", "").isalnum():
            raise InvalidInput("a subscription id is 1 to 64 letters, digits and hyphens", field="subscription_id")
        if self.catalog.find_subscription(sub_id) is not None:
            raise Conflict(f"subscription {sub_id!r} exists already")

    def _deployment(self, engine: Engine, deployment_id: str | None, manual: dict[str, Any] | None) -> Deployment:
        if manual:
            url = manual.get("scoring_url") or (manual.get("scoring_endpoint") or {}).get("url")
            if deployment_id and not url and not manual.get("id"):
                # A discovered deployment with per-subscription settings (content type, input name...).
                found = engine.get_deployment(deployment_id)
                found.options.update(manual.get("options") or {})
                found.request_headers.update(manual.get("request_headers") or {})
                return found
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                if manual.get("id") and not url:  # an engine-native id (SageMaker endpoint name...)
                    return Deployment.from_dict(manual)
                raise InvalidInput("deployment.scoring_url must be an http(s) URL", field="deployment.scoring_url")
            dep_id = manual.get("id") or deployment_id or hashlib.sha256(url.encode()).hexdigest()[:16]
            d = Deployment.from_dict({**manual, "id": dep_id, "scoring_url": url, "name": manual.get("name") or dep_id})
            if not d.asset:
                d.asset = {"asset_id": dep_id, "name": d.name, "asset_type": "model", "url": url}
            return d
        if not deployment_id:
            raise InvalidInput("give deployment_id (discovered) or deployment.scoring_url", field="deployment_id")
        return engine.get_deployment(deployment_id)

    @staticmethod
    def _properties(dep: Deployment, given: dict[str, Any]) -> AssetProperties:
        if not isinstance(given, dict):
            raise InvalidInput("asset_properties must be an object", field="asset_properties")
        prefill = {k: v for k, v in dep.asset_properties.items() if v not in (None, {}, [])}
        merged = {**prefill, **given}
        if "problem_type" not in merged:
            raise InvalidInput(
                "asset_properties.problem_type is required (binary, multiclass or regression)", field="problem_type"
            )
        try:
            return AssetProperties.model_validate(merged).checked()
        except InvalidInput:
            raise
        except Exception as exc:  # pydantic.ValidationError
            raise InvalidInput(_pydantic_message(exc), field="asset_properties") from None

    def _layout(
        self, sub_id: str, props: AssetProperties, frame: pd.DataFrame | None
    ) -> tuple[Layout, AssetProperties, dict[str, Any] | None]:
        cats = set(props.categorical_fields)
        schema: Schema | None = None
        if props.input_data_schema:
            schema = Schema.parse(props.input_data_schema, cats)
        elif frame is not None:
            cols = props.feature_fields or [c for c in frame.columns if c != props.label_column]
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise InvalidInput(f"training data lacks feature columns {missing}", field="feature_fields")
            schema = Schema.from_frame(frame, cols, cats)
        if schema is not None:
            if not props.feature_fields:
                props = props.model_copy(
                    update={"feature_fields": [c for c in schema.names if c != props.label_column]}
                )
            unknown = [f for f in props.feature_fields if f not in schema]
            if unknown:
                raise InvalidInput(f"feature_fields {unknown} are not in input_data_schema", field="feature_fields")
            schema = Schema(tuple(schema.get(f) for f in props.feature_fields))  # type: ignore[misc]
            if not cats:  # no explicit list: strings and booleans are categorical
                props = props.model_copy(update={"categorical_fields": [c.name for c in schema if c.categorical]})
        labels = props.labels
        stats = None
        if frame is not None:
            if props.label_column and props.label_column not in frame.columns:
                raise InvalidInput(f"training data has no label column {props.label_column!r}", field="label_column")
            if labels is None and props.problem_type.classification and props.label_column:
                labels = training_labels(frame, props.label_column)
            if schema is not None:
                stats = compute_statistics(
                    frame,
                    feature_fields=props.feature_fields,
                    categorical_fields=[c.name for c in schema if c.categorical],
                    label_column=props.label_column,
                    problem_type=props.problem_type.value,
                )
        if props.problem_type.classification and labels is not None:
            if len(labels) < 2:
                raise InvalidInput("a classification model needs at least two labels", field="labels")
            if props.problem_type.value == "binary" and len(labels) != 2:
                raise InvalidInput(
                    f"a binary model has two labels, the training data has {len(labels)}: {labels}", field="labels"
                )
        probs = props.probability_columns
        if not props.problem_type.classification:
            prob_col = None
            pred_kind: Kind | None = Kind.FLOAT
        else:
            prob_col = probs[0] if len(probs) == 1 else "probability"
            pred_kind = kind_of_labels(labels)
        hexid = sub_id.replace("-", "")
        layout = Layout(
            payload_table=f"payload_{hexid}",
            feedback_table=f"feedback_{hexid}",
            features=schema or Schema(()),
            prediction_column=props.prediction_field,
            prediction_kind=pred_kind,
            probability_column=prob_col,
            label_column=props.label_column,
            labels=labels,
        )
        return layout, props, stats

    def _store_training_rows(self, conn: Any, sub: Subscription, frame: pd.DataFrame) -> None:
        cols = [*sub.feature_fields]
        if sub.layout.label_column and sub.layout.label_column in frame.columns:
            cols.append(sub.layout.label_column)
        spec = []
        for c in cols:
            col = sub.layout.features.get(c)
            kind = col.kind if col else (sub.layout.prediction_kind or Kind.STR)
            spec.append((c, kind))
        name = training_table(sub.id)
        records.create(conn, name, records.spec([("_row", Kind.INT), *spec]))
        columns: list[list[Any]] = [list(range(len(frame)))]
        for c, kind in spec:
            columns.append(frame_column(frame[c], kind))
        bulk.insert_rows(conn, name, ["_row", *cols], list(zip(*columns, strict=True)))

    # -- training data -----------------------------------------------------------------------
    def set_training_data(self, sub_id: str, frame: pd.DataFrame) -> Subscription:
        """(Re)compute the statistics from a new training set; the schema stays as subscribed."""
        sub = self.get(sub_id)
        props = sub.properties
        feats = sub.feature_fields or props.feature_fields
        if not feats:
            raise InvalidInput("the subscription has no feature_fields yet", field="feature_fields")
        stats = compute_statistics(
            frame,
            feature_fields=feats,
            categorical_fields=sub.categorical_fields or props.categorical_fields,
            label_column=props.label_column,
            problem_type=props.problem_type.value,
        )
        layout = sub.layout
        if layout.labels is None and props.problem_type.classification and props.label_column:
            labels = training_labels(frame, props.label_column)
            layout = replace(layout, labels=labels, prediction_kind=layout.prediction_kind or kind_of_labels(labels))
        if not layout.features:
            layout = replace(layout, features=Schema.from_frame(frame, feats, set(props.categorical_fields)))
        with self.service.store.write() as conn:
            self.catalog.update_subscription(conn, sub.id, training_statistics=stats, layout=layout)
            if layout.complete:
                writer.ensure_tables(conn, layout)
            records.drop(conn, training_table(sub.id))
            self._store_training_rows(conn, replace(sub, layout=layout), frame)
        self.forget(sub_id)
        return self.get(sub_id)

    def set_labels(self, sub_id: str, labels: list[Any]) -> Subscription:
        """The class labels (in probability order) of a subscription that had none: learned from
        training statistics given after subscribing (OpenScale's client-side distributions)."""
        sub = self.get(sub_id)
        if not sub.problem_type.classification:
            raise InvalidInput("a regression model has no class labels", field="labels")
        if sub.labels is not None:
            if list(sub.labels) != list(labels):
                raise Conflict(f"the subscription's labels are {sub.labels}, not {labels}")
            return sub
        if len(labels) < 2 or (sub.problem_type.value == "binary" and len(labels) != 2):
            raise InvalidInput(f"labels {labels} do not fit a {sub.problem_type.value} model", field="labels")
        layout = replace(
            sub.layout, labels=list(labels), prediction_kind=sub.layout.prediction_kind or kind_of_labels(labels)
        )
        with self.service.store.write() as conn:
            self.catalog.update_subscription(conn, sub.id, layout=layout)
            if layout.complete:
                writer.ensure_tables(conn, layout)
        self.forget(sub_id)
        return self.get(sub_id)

    def training_frame(self, sub_id: str) -> pd.DataFrame:
        """The training rows kept in the data mart (for what needs rows, not statistics)."""
        import pandas as pd

        sub = self.get(sub_id)
        name = training_table(sub.id)
        with self.service.store.engine.connect() as conn:
            if not records.exists(conn, name):
                raise NotFound(f"subscription {sub_id!r} has no training data")
            q = f"SELECT * FROM {conn.dialect.identifier_preparer.quote(name)} ORDER BY _row"
            df = pd.read_sql_query(q, conn)
        return df.drop(columns=["_row"])

    # -- read / delete -----------------------------------------------------------------------
    def get(self, sub_id: str) -> Subscription:
        return self.catalog.get_subscription(sub_id)

    def list(self, binding_id: str | None = None) -> builtins.list[Subscription]:
        return self.catalog.list_subscriptions(binding_id)

    def delete(self, sub_id: str) -> None:
        sub = self.get(sub_id)
        self.forget(sub_id)
        with self.service.store.write() as conn:
            for name in (sub.layout.payload_table, sub.layout.feedback_table, training_table(sub.id)):
                records.drop(conn, name)
            self.catalog.delete_subscription(conn, sub.id)

    # -- scoring -----------------------------------------------------------------------------
    def context(self, sub: Subscription) -> ModelContext:
        props = sub.properties
        return ModelContext(
            feature_fields=sub.feature_fields or props.feature_fields or None,
            labels=sub.labels,
            problem_type=props.problem_type.value,
            prediction_field=props.prediction_field,
            probability_fields=props.probability_columns,
            options=dict(sub.deployment.get("options") or {}),
            feature_kinds={c.name: c.kind.value for c in sub.layout.features},
        )

    def seal_deployment(self, dep: Deployment) -> dict[str, Any]:
        """The deployment as stored: a per-endpoint secret (an Azure key) is encrypted, never plain."""
        out = dep.to_dict()
        if dep.credentials:
            out["sealed_credentials"] = self.service.box.seal(dep.credentials).decode()
        return out

    def deployment(self, sub: Subscription) -> Deployment:
        d = dict(sub.deployment)
        sealed = d.pop("sealed_credentials", None)
        dep = Deployment.from_dict(d)
        if sealed:
            dep.credentials = self.service.box.open(sealed.encode())
        return dep

    def check_request(self, sub: Subscription, request: ScoringRequest) -> None:
        """Reject bad scoring input before it reaches the engine: unknown, missing or mistyped fields."""
        features = sub.layout.features
        if not features:
            return
        known = set(features.names)
        for f in request.fields:
            if f not in known:
                raise InvalidInput("unknown field", field=f)
        for col in features:
            if col.name not in request.fields:
                raise InvalidInput("missing scoring field", field=col.name)
            i = request.fields.index(col.name)
            convert([row[i] for row in request.values], col.kind, col.name, lambda pos: (None, pos + 1))

    def score(self, sub_id: str, body: Any) -> dict[str, Any]:
        """Score through the engine (internal: never logged) and return normalised outputs."""
        sub = self.get(sub_id)
        request = parse_scoring_request(body)
        if not request.values:
            raise InvalidInput("no rows to score", field="values")
        self.check_request(sub, request)
        response = self.score_request(sub, request)
        out = normalize_rows(
            response.fields,
            response.values,
            classification=sub.problem_type.classification,
            labels=sub.labels,
            prediction_field=sub.properties.prediction_field,
            probability_fields=sub.properties.probability_columns,
        )
        fields = [sub.layout.prediction_column]
        columns: list[list[Any]] = [out.prediction.tolist()]
        if out.probability is not None:
            fields += [sub.layout.probability_column or "probability", PREDICTION_PROBABILITY]
            columns += [out.probability.tolist(), out.prediction_probability.tolist()]  # type: ignore[union-attr]
        skip = {sub.properties.prediction_field, *sub.properties.probability_columns}
        for i, f in enumerate(response.fields):
            if f not in skip and f not in fields:
                fields.append(f)
                columns.append([row[i] for row in response.values])
        return {
            "fields": fields,
            "values": [list(r) for r in zip(*columns, strict=True)],
            "labels": sub.labels,
            "prediction_derived": out.derived,
        }

    def score_request(self, sub: Subscription, request: ScoringRequest, *, internal: bool = True) -> Any:
        engine = self.service.bindings.engine(sub.binding_id)
        return engine.score(self.deployment(sub), request, self.context(sub), internal=internal)


def frame_column(series: pd.Series, kind: Kind) -> list[Any]:
    """A DataFrame column as driver-ready Python values (None for missing)."""
    from scrutiny.ingest.batch import pylist

    if kind in (Kind.INT, Kind.FLOAT):
        return pylist(series.to_numpy(dtype=np.float64, na_value=np.nan), kind)
    values = series.astype(object).where(series.notna(), None).tolist()
    if kind is Kind.STR:
        return [v if v is None or isinstance(v, str) else str(v) for v in values]
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def _pydantic_message(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for e in errors()[:3]:
            loc = ".".join(str(x) for x in e.get("loc", ()))
            parts.append(f"{loc}: {e.get('msg')}")
        return "; ".join(parts)
    return str(exc)

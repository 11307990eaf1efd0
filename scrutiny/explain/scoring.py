"""Scoring candidate rows for an explainer: as few engine calls as the engine allows, all counted.

Explanations are paid in scoring calls to a remote engine, so an explainer hands all the rows
of one step to ``Scorer.score`` at once. They go out as one call, split only where the engine's
``batch_rows()`` limit forces it. The calls are internal (``X-Scrutiny-Internal: 1``, never
logged as payload) and are counted, with the rows, for the stored explanation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from scrutiny.core.outputs import class_indices, normalize_rows
from scrutiny.core.scoring_format import ScoringRequest
from scrutiny.core.subscription import Subscription
from scrutiny.engines.errors import EngineResponseShape
from scrutiny.errors import InvalidInput, ScrutinyError

if TYPE_CHECKING:
    from scrutiny.service import Service


class BudgetExceeded(ScrutinyError):
    """The explanation's time budget ran out before it had enough scored rows."""

    code = "time_budget_exceeded"
    status = 504


@dataclass
class Scored:
    """Normalised outputs of scored rows, in request order."""

    prediction: np.ndarray  # labels (object) for classification, float64 for regression
    probability: np.ndarray | None  # [n, n_classes] in label order
    classes: np.ndarray | None  # index of each prediction among the labels, -1 if not a label

    def __len__(self) -> int:
        return len(self.prediction)


class ScoresRows(Protocol):
    """What an explainer needs from a scorer (``Scorer`` for engines; tests also score in-process)."""

    truncated: bool

    @property
    def classification(self) -> bool: ...

    @property
    def labels(self) -> list[Any]: ...

    def score(self, fields: list[str], values: list[list[Any]], *, min_rows: int | None = None) -> Scored: ...


class Scorer:
    def __init__(self, service: Service, sub: Subscription, *, deadline: float | None = None) -> None:
        self.service = service
        self.sub = sub
        self.deadline = deadline
        self.calls = 0
        self.rows = 0
        self.seconds = 0.0
        self.truncated = False  # a partial score stopped early at the deadline

    @property
    def classification(self) -> bool:
        return self.sub.problem_type.classification

    @property
    def labels(self) -> list[Any]:
        return list(self.sub.labels or [])

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def score(self, fields: list[str], values: list[list[Any]], *, min_rows: int | None = None) -> Scored:
        """Score ``values``. With ``min_rows``, chunks after the deadline are skipped once at least
        that many rows are scored (the result is then shorter than ``values``)."""
        subs = self.service.subscriptions
        request = ScoringRequest(fields, values)
        engine = self.service.bindings.engine(self.sub.binding_id)
        step = max(1, engine.batch_rows(subs.deployment(self.sub), request))
        parts: list[Any] = []
        scored = 0
        for start in range(0, len(values), step):
            if start and self.out_of_time():
                if min_rows is not None and scored >= min_rows:
                    self.truncated = True
                    break
                raise BudgetExceeded(
                    f"the time budget ran out after scoring {scored} of {len(values)} rows "
                    f"in {self.calls} call(s); raise options.time_budget_s or lower options.perturbations"
                )
            chunk = request.slice(start, start + step)
            t0 = time.perf_counter()
            try:
                response = subs.score_request(self.sub, chunk, internal=True)
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1
                self.rows += len(chunk)
            parts.append(response)
            scored += len(chunk)
        return self._normalize(parts)

    def _normalize(self, parts: list[Any]) -> Scored:
        from scrutiny.core.scoring_format import ScoringResponse

        response = ScoringResponse.concat(parts)
        props = self.sub.properties
        try:
            out = normalize_rows(
                response.fields,
                response.values,
                classification=self.classification,
                labels=self.sub.labels,
                prediction_field=props.prediction_field,
                probability_fields=props.probability_columns,
            )
        except InvalidInput as exc:
            raise EngineResponseShape(
                f"its output cannot be explained: {exc.message}",
                binding=self.sub.binding_id,
                deployment=self.sub.deployment_id,
            ) from None
        classes = None
        if self.classification:
            classes = class_indices(out.prediction, self.labels) if self.labels else None
        return Scored(out.prediction, out.probability, classes)

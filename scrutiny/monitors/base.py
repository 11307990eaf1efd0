"""What a monitor is, and the contract every monitor implements.

A monitor turns a subscription's records (payload or feedback) into a *measurement*: numbers
with the limits in force when they were computed. Monitors never scan history on each run.
They keep **mergeable partial aggregates per time bucket**, built as records are ingested, and
merge them at run time, so a run over 1,000,000 rows costs in proportion to the rows added since
the last run (plus a few microseconds per stored bucket), in constant memory.

The contract
============

A monitor is a subclass of :class:`Monitor` registered with :func:`scrutiny.monitors.registry.register`.
It declares:

``name``                 ``quality``, ``fairness``, ``drift``, ``performance``... (the URL segment)
``table``                which record table it reads: ``"payload"`` or ``"feedback"``
``config_model``         a pydantic model, subclass of :class:`MonitorConfig` (``extra="forbid"``)
``default_period``       how often the scheduler runs it (a ``timedelta``)
``metrics``              ``{metric_id: Metric(direction, bounds)}``: what it may report, which way
                         is better, and the range a threshold may take

and implements these methods (all but ``evaluate`` are optional; defaults are no-ops):

``validate(sub, config, known)``
    Check the configuration against the subscription and raise ``InvalidInput`` naming the bad
    column or value (``field="features[0].minority"``), e.g. an unknown column or a group value
    that the training data and the payload table never saw. ``known`` answers "which values
    does this column take" from the training statistics or the stored rows. Return the config,
    possibly normalised (defaults filled in).

``prepare(service, sub, config) -> dict | None``
    Called after an enabled configuration is stored, outside any transaction: learn what runs
    need from the training data (the drift monitor trains its accuracy detector here, as
    OpenScale does at configuration time). Returns a summary shown in the configure response;
    it must not fail the configuration (runs retry what is missing).

``default_thresholds(sub, config) -> list[Threshold]``
    The limits that apply when the user sets none (e.g. ``accuracy`` lower 0.8). The user's
    ``config.thresholds`` override them metric by metric; ``value: null`` removes a default.

``plan(sub, config) -> dict | None``
    Everything the partial aggregates depend on, as plain JSON: bin edges taken from the
    training statistics, the label order, group definitions, the positive class... ``None``
    means the monitor keeps no partials (it reads rows at run time). The framework stores the
    plan with a fresh ``plan_id``; partials are only ever merged with partials of the same
    plan. A configuration change that leaves the plan equal (thresholds, schedule, window
    sizes) keeps the partials; one that changes it rebuilds them from the stored rows (see
    "Backfill" below). Training statistics are part of what a plan may depend on: runs compare
    the stored plan with ``plan(sub, config)`` and rebuild when they differ.

``load_plan(plan: dict) -> Any``
    Turn the stored JSON into whatever ``build`` wants (arrays, lookup tables). Cached per
    ``plan_id``, so this runs once per process, not once per batch. Default: the dict itself.

``build(plan, batch: RecordBatch) -> Partial``
    The partial aggregate of a batch of rows that all fall in one time bucket. This is the hot
    path, called inside every ingest transaction: it must be a few vectorised NumPy operations
    over ``batch.columns[name]`` (float64 with NaN for null numbers, object arrays with None for
    strings and booleans), ``batch.probability`` (float64 ``[n, n_classes]`` in label order) and
    ``batch.timestamps`` (``datetime64[us]``, UTC). Never a Python loop over rows. The same
    function builds partials from rows read back from the table (backfill, window edges), so a
    column may be missing from a batch (a meta column added later): treat it as all null.

``partials_in_database(conn, sub, plan) -> Iterable[(bucket, Partial, rows, min_ts, max_ts)] | None``
    Optional, for backfill: the partial of every hour bucket computed by the database itself
    (an aggregate query instead of reading every row back; ``bucket`` is ``datetime64[h]``,
    the timestamps ``datetime64[us]``). ``None`` (or no such method) means "read the rows and
    ``build``". Fairness groups counts with one ``GROUP BY`` on PostgreSQL.

``empty(plan) -> Partial``
    The identity of ``merge`` (a window with no rows).

``load_partial(data: bytes) -> Partial``
    Inverse of ``Partial.to_bytes()``.

``window(config, now, last) -> Window``
    Which rows a scheduled run evaluates: a time range and/or the most recent rows
    (``Window(start, end, min_rows, max_rows)``); ``last`` is the previous finished measurement.
    An on-demand run may override ``start``/``end``.

``evaluate(run: Run) -> Result``
    Compute the values from ``run.partial()`` (the window's partials, merged) and, when the
    metric needs rows (listing biased transactions, per-transaction drift verdicts), from
    ``run.batches(columns)`` (the window's rows, streamed in chunks; ``newest_first`` with
    ``limit`` for the most recent ones; ``table`` to read the other record table up to the
    window's end) or ``run.score(request)`` (internal scoring through the engine, never logged
    as payload); ``run.training_frame(columns)`` gives the training rows (only those columns when
    given), and ``run.service`` what else a monitor keeps (a model learned from the training
    data, in its own table). Return
    ``Result(values={metric: number | None}, details={...})``, or
    ``Result.insufficient(message, records)`` when the window has too few rows. Values that
    cannot be computed are ``None`` with the reason in ``details``. Raising fails the run: the
    framework stores an ``error`` measurement with the message and nothing else.

A partial (:class:`Partial`) has ``merge(other) -> Partial`` (associative and commutative:
partials are merged in any order and grouping) and ``to_bytes() -> bytes``. ``merge`` may
return a new object or update ``self``. :mod:`scrutiny.monitors.partials` provides ``pack`` /
``unpack`` (named NumPy arrays and JSON scalars to bytes and back) and ``KeyedCounts`` (counts
per value of a column with values not known in advance, merged by key).

Metric ids
----------
``values`` is flat: ``{"accuracy": 0.83}``. A metric that exists per attribute, feature or
class is written ``"<metric>.<qualifier>"`` (``"disparate_impact.Sex"``,
``"drift_score.LoanAmount"``); thresholds name the same ids; Prometheus exposes them as
``metric="disparate_impact", qualifier="Sex"``. ``metrics`` declares the base id
(``disparate_impact``) and applies to every qualifier.

How the framework runs it
=========================

Ingest (``scrutiny.monitors.partials.on_records_written``, registered with
``scrutiny.ingest.writer.on_write``): inside each write transaction, for every enabled monitor
of the subscription that reads this table and has a plan, the inserted rows (duplicates already
removed) are split by hour bucket and ``build`` runs once per bucket; each partial is appended
to ``monitor_partials`` as one row ``(plan_id, bucket, rows, min_ts, max_ts, state)``. The
rows and their partials commit together or not at all, so partials never double-count and
never miss a row.

Backfill: enabling a monitor, or changing its plan, when rows already exist rebuilds its
partials from the stored table in one write transaction that excludes concurrent writers of
that subscription (SQLite: the write lock; PostgreSQL: an advisory lock that ingest takes in
shared mode): rows are read in chunks of 50,000 (constant memory), ``build`` runs per bucket,
the old plan's partials are deleted.

Run: the window is resolved against bucket metadata. Buckets entirely inside the window are
taken from their merged partials; a bucket cut by the window's edge (a start time within it,
or the oldest rows beyond ``max_rows``) is rebuilt from the rows inside the window, read from
the table. Everything is read in one snapshot. The merged partial goes to ``evaluate``; the
framework applies thresholds (violations: ``value < lower_limit`` or ``value > upper_limit``),
stores the measurement, opens or closes alerts, and compacts the buckets it read into one
partial row each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from scrutiny.core.scoring_format import ScoringRequest
    from scrutiny.core.subscription import Subscription
    from scrutiny.ingest.batch import RecordBatch
    from scrutiny.service import Service

PAYLOAD = "payload"
FEEDBACK = "feedback"


# -- thresholds ----------------------------------------------------------------------------------


class LimitType(StrEnum):
    LOWER = "lower_limit"
    UPPER = "upper_limit"


class Direction(StrEnum):
    HIGHER = "higher"  # higher is better: limits are lower limits
    LOWER = "lower"  # lower is better: limits are upper limits
    EITHER = "either"  # both make sense (a ratio with an ideal of 1)


@dataclass(frozen=True)
class Metric:
    """What a monitor may report: which way is better, and the range a limit may take."""

    direction: Direction
    low: float | None = None  # inclusive bounds of a threshold value; None = unbounded
    high: float | None = None
    description: str = ""

    def allows(self, limit: LimitType) -> bool:
        if self.direction is Direction.EITHER:
            return True
        return (limit is LimitType.LOWER) == (self.direction is Direction.HIGHER)


class Threshold(BaseModel):
    """A limit on one metric: ``{"metric": "accuracy", "type": "lower_limit", "value": 0.8}``."""

    model_config = ConfigDict(extra="forbid")
    metric: str = Field(description="metric id, or '<metric>.<qualifier>' (e.g. 'disparate_impact.Sex')")
    type: LimitType = Field(description="lower_limit: violated below; upper_limit: violated above")
    value: float | None = Field(description="the limit; null removes a default limit")

    def violated_by(self, value: float | None) -> bool:
        if value is None or self.value is None:
            return False
        return value < self.value if self.type is LimitType.LOWER else value > self.value

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "type": self.type.value, "value": self.value}


def base_metric(metric_id: str) -> str:
    return metric_id.split(".", 1)[0]


# -- configuration -------------------------------------------------------------------------------

REPEAT_UNITS = {"minute": 60, "hour": 3600, "day": 86400, "week": 604800}


class Schedule(BaseModel):
    """OpenScale's v2 schedule: every ``repeat_interval`` ``repeat_unit``s."""

    model_config = ConfigDict(extra="forbid")
    repeat_interval: int = Field(1, ge=1, le=10_000)
    repeat_unit: Literal["minute", "hour", "day", "week"] = "hour"

    @property
    def seconds(self) -> int:
        return self.repeat_interval * REPEAT_UNITS[self.repeat_unit]

    @classmethod
    def of(cls, period: timedelta) -> Schedule:
        s = int(period.total_seconds())
        for unit in ("week", "day", "hour", "minute"):
            if s % REPEAT_UNITS[unit] == 0:
                return cls(repeat_interval=s // REPEAT_UNITS[unit], repeat_unit=unit)  # type: ignore[arg-type]
        return cls(repeat_interval=max(1, s // 60), repeat_unit="minute")


class MonitorConfig(BaseModel):
    """Fields every monitor's configuration has; monitors subclass it with their own."""

    model_config = ConfigDict(extra="forbid")
    thresholds: list[Threshold] = Field(
        default_factory=list, description="limits overriding the monitor's defaults, metric by metric"
    )
    schedule: Schedule | None = Field(None, description="how often it runs; default: the monitor's period")

    @field_validator("thresholds")
    @classmethod
    def _unique(cls, v: list[Threshold]) -> list[Threshold]:
        seen = set()
        for t in v:
            key = (t.metric, t.type)
            if key in seen:
                raise ValueError(f"two {t.type.value} thresholds for {t.metric!r}")
            seen.add(key)
        return v

    def plan_fields(self) -> dict[str, Any]:
        """The configuration without thresholds and schedule (what a plan may depend on)."""
        return self.model_dump(mode="json", exclude={"thresholds", "schedule"})


# -- windows and results -------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Rows a run evaluates: those with ``start <= ts < end`` (either bound optional); if fewer
    than ``min_rows``, the most recent earlier rows are added until there are ``min_rows``; at
    most the ``max_rows`` most recent are kept. Rows are ordered by (timestamp, scoring_id)."""

    start: datetime | None = None
    end: datetime | None = None
    min_rows: int | None = None
    max_rows: int | None = None


class Status(StrEnum):
    FINISHED = "finished"
    INSUFFICIENT = "insufficient_data"
    ERROR = "error"


@dataclass
class Result:
    """What ``evaluate`` returns."""

    values: dict[str, float | None] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    status: Status = Status.FINISHED
    message: str | None = None

    @classmethod
    def insufficient(cls, message: str, **details: Any) -> Result:
        return cls(status=Status.INSUFFICIENT, message=message, details=dict(details))


# -- partials ------------------------------------------------------------------------------------


class Partial(Protocol):
    """A mergeable partial aggregate of some rows."""

    def merge(self, other: Self) -> Self: ...

    def to_bytes(self) -> bytes: ...


class KnownValues(Protocol):
    """Answers "which values does this column take?" for configuration checks."""

    def __call__(self, column: str, limit: int = 1000) -> list[Any]: ...


class Run(Protocol):
    """What ``evaluate`` sees (implemented by ``scrutiny.monitors.run.runner.RunContext``)."""

    @property
    def sub(self) -> Subscription: ...
    @property
    def config(self) -> Any: ...  # the monitor's config model
    @property
    def plan(self) -> Any: ...  # load_plan(plan)
    @property
    def now(self) -> datetime: ...
    @property
    def window(self) -> Window: ...  # the window asked for (start/end bounds, min/max rows)
    @property
    def records(self) -> int: ...  # rows in the resolved window
    @property
    def window_start(self) -> datetime | None: ...  # oldest row's timestamp in the window
    @property
    def window_end(self) -> datetime | None: ...  # newest row's timestamp in the window
    @property
    def previous(self) -> dict[str, Any] | None: ...  # the last finished measurement, as the API shows it

    def partial(self) -> Any: ...

    def batches(
        self,
        columns: list[str] | None = None,
        chunk: int = 50_000,
        *,
        newest_first: bool = False,
        limit: int | None = None,
        table: str | None = None,
    ) -> Iterator[RecordBatch]: ...

    def score(self, request: ScoringRequest) -> Any: ...

    def training_frame(self, columns: list[str] | None = None) -> Any: ...  # training rows (pandas) or None

    @property
    def service(self) -> Service: ...


# -- the monitor ---------------------------------------------------------------------------------


class Monitor:
    """Base class of every monitor; see the module docstring for the contract."""

    name: ClassVar[str]
    table: ClassVar[str] = PAYLOAD
    config_model: ClassVar[type[MonitorConfig]] = MonitorConfig
    default_period: ClassVar[timedelta] = timedelta(hours=1)
    enabled_by_default: ClassVar[bool] = False  # performance: on from the first payload (contract §1.4)
    computed: ClassVar[bool] = True  # False: its values are posted (custom monitors): never run or scheduled
    metrics: ClassVar[dict[str, Metric]] = {}
    description: ClassVar[str] = ""

    # configuration
    def validate(self, sub: Subscription, config: Any, known: KnownValues) -> Any:
        return config

    def default_thresholds(self, sub: Subscription, config: Any) -> list[Threshold]:
        return []

    # partial aggregates
    def plan(self, sub: Subscription, config: Any) -> dict[str, Any] | None:
        return None

    def load_plan(self, plan: dict[str, Any]) -> Any:
        return plan

    def build(self, plan: Any, batch: RecordBatch) -> Partial:
        raise NotImplementedError(f"monitor {self.name!r} keeps no partial aggregates")

    def empty(self, plan: Any) -> Partial:
        raise NotImplementedError(f"monitor {self.name!r} keeps no partial aggregates")

    def load_partial(self, data: bytes) -> Partial:
        raise NotImplementedError(f"monitor {self.name!r} keeps no partial aggregates")

    def prepare(self, service: Service, sub: Subscription, config: Any) -> dict[str, Any] | None:
        """Learn, once the configuration is stored and enabled, what runs will need (a model
        trained on the training data, as OpenScale trains its drift model at configuration).
        Outside any transaction; it must not fail the configuration: report problems in the
        returned summary (shown in the configure response) and let runs retry."""
        return None

    # runs
    def window(self, config: Any, now: datetime, last: dict[str, Any] | None) -> Window:
        return Window(end=now)

    def evaluate(self, run: Run) -> Result:
        raise NotImplementedError

    # helpers shared by the framework
    def parse_config(self, body: dict[str, Any] | None) -> Any:
        """The config model from a request body; pydantic errors become ``InvalidInput`` naming the field."""
        from pydantic import ValidationError

        from scrutiny.errors import InvalidInput

        try:
            return self.config_model.model_validate(body or {})
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err.get("loc", ()))
            raise InvalidInput(f"{err.get('msg')}", field=loc or None, monitor=self.name) from None

    def period(self, config: Any) -> timedelta:
        sched = getattr(config, "schedule", None)
        return timedelta(seconds=sched.seconds) if sched is not None else self.default_period


MonitorFactory = Callable[[], Monitor]

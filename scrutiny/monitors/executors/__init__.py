"""Where a monitor's partial aggregates are computed: in this process, or on an engine such as Spark.

Every executor runs the same two functions of ``rows`` (``partial_rows`` on the rows,
``merge_partial_rows`` on what comes back), which call the monitor's own ``build``, ``merge``
and ``load_partial``: an engine adds reach, never a second definition of a metric.
"""

from __future__ import annotations

from scrutiny.errors import InvalidInput
from scrutiny.monitors.executors.base import EngineUnavailable, Executor, ParquetFiles, Progress, Scan
from scrutiny.monitors.executors.inprocess import InProcessExecutor
from scrutiny.monitors.executors.rows import (
    PARTIAL_SCHEMA,
    BucketPartial,
    Shape,
    Task,
    merge_partial_rows,
    partial_rows,
)

ENGINES = ("in-process", "spark")


def executor_for(engine: str, *, master: str | None = None, conf: dict[str, str] | None = None) -> Executor:
    """An executor by name (``in-process`` or ``spark``)."""
    if engine == "in-process":
        return InProcessExecutor()
    if engine == "spark":
        from scrutiny.monitors.executors.spark import SparkExecutor

        return SparkExecutor(master or "local[2]", conf)
    raise InvalidInput(f"unknown engine {engine!r}; one of {', '.join(ENGINES)}", field="engine")


__all__ = [
    "ENGINES",
    "PARTIAL_SCHEMA",
    "BucketPartial",
    "EngineUnavailable",
    "Executor",
    "InProcessExecutor",
    "ParquetFiles",
    "Progress",
    "Scan",
    "Shape",
    "Task",
    "executor_for",
    "merge_partial_rows",
    "partial_rows",
]

"""What an executor reads and what every executor answers to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import pyarrow as pa

from scrutiny.errors import ScrutinyError
from scrutiny.monitors.executors.rows import Shape, Task

Progress = Callable[[str], None]  # told what the executor is doing (the CLI shows it)


class EngineUnavailable(ScrutinyError):
    """The engine cannot run here: its extra is not installed, or Java is missing."""

    code = "engine_unavailable"
    status = 503


@dataclass(frozen=True)
class ParquetFiles:
    """One table's rows as Parquet files (a lake snapshot): the files, the snapshot they make up,
    and which file column holds each Scrutiny column (``{scrutiny_name: file_column}``; a
    column not named is read under its own name)."""

    paths: tuple[str, ...]
    snapshot: str | None = None
    rename: dict[str, str] = field(default_factory=dict)

    def column(self, name: str) -> str:
        return self.rename.get(name, name)


@dataclass(frozen=True)
class Scan:
    """What to compute: the monitors' partials over the rows with ``start <= ts < end``."""

    files: ParquetFiles
    tasks: list[Task]
    shape: Shape
    columns: list[str]  # Scrutiny columns the tasks read (scoring_id and the timestamp come too)
    start: datetime | None = None
    end: datetime | None = None


class Executor(Protocol):
    """Computes partial rows (see ``rows.PARTIAL_SCHEMA``) for a scan."""

    name: str

    def partial_rows(self, scan: Scan, progress: Progress | None = None) -> pa.Table: ...

    def describe(self) -> dict[str, object]: ...  # what the measurement records about the engine

    def close(self) -> None: ...

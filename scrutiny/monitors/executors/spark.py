"""The Spark executor: the seam's ``partial_rows`` inside Spark's ``mapInArrow``.

Spark reads the Parquet files (a lake snapshot listed by the driver, so no connector JAR is
needed), keeps the window's rows, and hands each task's Arrow batches to
``scrutiny.monitors.executors.rows.partial_rows`` on its Python workers; the driver collects
the partial rows (one per monitor and hour bucket per task: small) and merges them. Scrutiny's
own code is shipped to the workers as a zip (``addPyFile``) so they run exactly the driver's
version; their Python (``PYSPARK_PYTHON``, default: this interpreter) must have Scrutiny's
dependencies.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from scrutiny.core.subscription import SCORING_ID, SCORING_TIMESTAMP
from scrutiny.monitors.executors.base import EngineUnavailable, Progress, Scan
from scrutiny.monitors.executors.rows import PARTIAL_SCHEMA, SPARK_SCHEMA, partial_rows

EXTRA = "pip install 'scrutiny[spark]'"
LOCAL_DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}
DEFAULTS = {
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "20000",
}


def require_pyspark() -> Any:
    """The ``pyspark`` module, or an error that says how to install it and what else is missing."""
    try:
        import pyspark
    except ImportError:
        raise EngineUnavailable(f"the Spark engine needs pyspark: {EXTRA}") from None
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise EngineUnavailable("the Spark engine needs Java 17 or newer (java on PATH, or JAVA_HOME)")
    return pyspark


class SparkExecutor:
    """One Spark session (created on first use, kept until ``close``) on ``master``."""

    name = "spark"

    def __init__(self, master: str = "local[2]", conf: dict[str, str] | None = None, python: str | None = None) -> None:
        self.master = master
        self.conf = dict(conf or {})
        self.python = python or os.environ.get("PYSPARK_PYTHON") or sys.executable
        self._session: Any = None
        self._lock = threading.Lock()
        self.startup_seconds: float | None = None

    # -- the session -----------------------------------------------------------------------------
    def session(self) -> Any:
        with self._lock:
            if self._session is None:
                require_pyspark()
                from pyspark.sql import SparkSession

                t0 = time.perf_counter()
                os.environ.setdefault("PYSPARK_PYTHON", self.python)
                if self.master.startswith("local"):
                    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
                builder = SparkSession.builder.master(self.master).appName("scrutiny")
                conf = {**(LOCAL_DEFAULTS if self.master.startswith("local") else {}), **DEFAULTS}
                conf["spark.pyspark.python"] = self.python
                conf.update(self.conf)
                for key, value in conf.items():
                    builder = builder.config(key, value)
                spark = builder.getOrCreate()
                spark.sparkContext.setLogLevel("ERROR")
                spark.sparkContext.addPyFile(str(package_zip()))
                self._session = spark
                self.startup_seconds = time.perf_counter() - t0
            return self._session

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.stop()
                self._session = None

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "master": self.master}
        if self.startup_seconds is not None:
            out["startup_seconds"] = round(self.startup_seconds, 3)
        return out

    # -- the work --------------------------------------------------------------------------------
    def partial_rows(self, scan: Scan, progress: Progress | None = None) -> pa.Table:
        if not scan.files.paths:
            return PARTIAL_SCHEMA.empty_table()
        if progress and self._session is None:
            progress(f"starting Spark ({self.master})")
        spark = self.session()
        from pyspark.sql import functions as F

        df = spark.read.option("mergeSchema", "true").parquet(*scan.files.paths)
        present = set(df.columns)
        wanted = list(dict.fromkeys([SCORING_ID, SCORING_TIMESTAMP, *scan.columns]))
        df = df.select(
            *[F.col(f"`{scan.files.column(c)}`").alias(c) for c in wanted if scan.files.column(c) in present]
        )
        ts = F.col(SCORING_TIMESTAMP)
        if scan.start is not None:
            df = df.where(ts >= F.lit(_utc(scan.start)))
        if scan.end is not None:
            df = df.where(ts < F.lit(_utc(scan.end)))
        job = df.mapInArrow(functools.partial(partial_rows, scan.tasks, scan.shape), SPARK_SCHEMA)
        with _watch(spark, progress):
            out = job.toArrow()
        return out.cast(PARTIAL_SCHEMA)


def _utc(ts: datetime) -> datetime:
    """A timestamp literal Spark reads as that instant (the session's time zone is UTC)."""
    from datetime import UTC

    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


class _watch:
    """Reports the running stages' task counts while a job runs."""

    def __init__(self, spark: Any, progress: Progress | None) -> None:
        self.spark = spark
        self.progress = progress
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _watch:
        if self.progress is not None:
            self._thread = threading.Thread(target=self._poll, daemon=True, name="scrutiny-spark-progress")
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _poll(self) -> None:
        tracker = self.spark.sparkContext.statusTracker()
        while not self._stop.wait(0.5):
            for stage_id in tracker.getActiveStageIds():
                info = tracker.getStageInfo(stage_id)
                if info is not None and self.progress is not None:
                    self.progress(f"Spark stage {stage_id}: {info.numCompletedTasks}/{info.numTasks} tasks")


_zip_lock = threading.Lock()
_zip_path: Path | None = None


def package_zip() -> Path:
    """Scrutiny's Python sources as one zip for the workers (built once per process)."""
    global _zip_path
    with _zip_lock:
        if _zip_path is None or not _zip_path.exists():
            import scrutiny

            root = Path(scrutiny.__file__).resolve().parent
            target = Path(tempfile.mkdtemp(prefix="scrutiny-spark-")) / "scrutiny.zip"
            with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in sorted(root.rglob("*.py")):
                    if "__pycache__" not in path.parts:
                        zf.write(path, Path("scrutiny") / path.relative_to(root))
            _zip_path = target
        return _zip_path

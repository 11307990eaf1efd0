"""One Spark session (local[2]) for every test of this package; skipped with the reason where
pyspark or Java is missing. The lake tests run on SQLite (PostgreSQL where a test says so)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scrutiny.monitors.executors import EngineUnavailable


@pytest.fixture(scope="session")
def spark_executor() -> Iterator[object]:
    from scrutiny.monitors.executors.spark import SparkExecutor, require_pyspark

    try:
        require_pyspark()
    except EngineUnavailable as exc:
        pytest.skip(exc.message)
    # small Arrow batches and file splits: every task sends several partial rows per bucket
    executor = SparkExecutor(
        "local[2]",
        {
            "spark.sql.execution.arrow.maxRecordsPerBatch": "37",
            "spark.sql.files.maxPartitionBytes": "16k",
            "spark.driver.memory": "1g",
        },
    )
    yield executor
    executor.close()


@pytest.fixture
def backend() -> str:
    return "sqlite"

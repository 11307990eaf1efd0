"""Process-level tuning for long-running servers."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Freeze start-up objects out of the collector and collect the young generation less often.

    Ingest builds tens of thousands of short-lived tuples per batch; with the default thresholds
    the collector runs dozens of times per batch and rescans everything imported at start-up.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)

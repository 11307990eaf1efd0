"""Data for the drift tests: the peer benchmark's synthetic shape, and Adult census."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from tests.support.datasets import ADULT_COLUMNS, adult_file

if TYPE_CHECKING:
    import pandas as pd

# The peer baselines' generator (/work/shared/peer-baselines/_common.py, make_arrays), verbatim
# in its numbers: 20 numeric + 5 categorical columns; drift=True shifts the mean of 4 numeric
# columns by 0.25 sd, widens 4 by 1.3x, and reverses the category weights of 2 categorical ones.
N_NUM = 20
N_CAT = 5
NUM_COLS = [f"num_{i}" for i in range(N_NUM)]
CAT_COLS = [f"cat_{i}" for i in range(N_CAT)]
CAT_LEVELS = [4, 6, 8, 10, 12]
DRIFTED = {*NUM_COLS[:8], *CAT_COLS[:2]}


def make_arrays(n: int, seed: int = 0, drift: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed + (1000 if drift else 0))
    means = np.linspace(-2, 2, N_NUM)
    scales = np.linspace(0.5, 3, N_NUM)
    num = rng.standard_normal((n, N_NUM)) * scales + means
    if drift:
        num[:, :4] += 0.25 * scales[:4]
        num[:, 4:8] *= 1.3
    cats = []
    for j, k in enumerate(CAT_LEVELS):
        p = np.arange(1, k + 1, dtype=float)[::-1]
        if drift and j < 2:
            p = p[::-1]
        p /= p.sum()
        codes = rng.choice(k, size=n, p=p)
        levels = np.array([f"c{j}_{v}" for v in range(k)], dtype=object)
        cats.append(levels[codes])
    return num, cats


def synthetic_columns(n: int, seed: int = 0, drift: bool = False) -> dict[str, np.ndarray]:
    num, cats = make_arrays(n, seed, drift)
    out: dict[str, np.ndarray] = {c: np.ascontiguousarray(num[:, i]) for i, c in enumerate(NUM_COLS)}
    out.update(zip(CAT_COLS, cats, strict=True))
    return out


def synthetic_frame(n: int, seed: int = 0, drift: bool = False) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(synthetic_columns(n, seed, drift))


ADULT_FEATURES = ADULT_COLUMNS[:-1]
ADULT_NUMERIC = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
ADULT_CATEGORICAL = [c for c in ADULT_FEATURES if c not in ADULT_NUMERIC]


@cache
def _adult() -> tuple[Any, Any]:
    import pandas as pd

    kw: dict[str, Any] = {"header": None, "names": ADULT_COLUMNS, "skipinitialspace": True, "na_values": "?"}
    data = pd.read_csv(adult_file("adult.data"), **kw)
    test = pd.read_csv(adult_file("adult.test"), skiprows=1, **kw)
    test["income"] = test["income"].str.rstrip(".")
    for df in (data, test):
        for c in ADULT_NUMERIC:
            df[c] = df[c].astype("int64")
        for c in [*ADULT_CATEGORICAL, "income"]:
            df[c] = df[c].astype(object)
    return data, test


def adult() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(adult.data, adult.test), 32,561 and 16,281 rows; missing values are None."""
    data, test = _adult()
    return data.copy(), test.copy()


def columns_of(df: pd.DataFrame, numeric: list[str], categorical: list[str]) -> dict[str, np.ndarray]:
    """Columns in record-batch form (float64 with NaN, object with None)."""
    out: dict[str, np.ndarray] = {}
    for c in numeric:
        out[c] = df[c].to_numpy(dtype=np.float64, na_value=np.nan)
    for c in categorical:
        s = df[c]
        arr = np.full(len(s), None, dtype=object)
        present = s.notna().to_numpy()
        arr[present] = s[present].astype(str).to_numpy().astype(object)
        out[c] = arr
    return out

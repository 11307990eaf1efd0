"""Training data and the statistics derived from it once per subscription.

Monitors and explainers read these statistics instead of the training file: per feature its
type, counts, range, quantiles, quartile-bin moments (for LIME-style perturbation) and value
counts; per label its class distribution. The training rows themselves are also kept in the
data mart (``training_<subscription>``) for what needs rows (the drift-detection model).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scrutiny.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

QUANTILES = np.linspace(0.0, 1.0, 101)
MAX_DISTINCT = 100
MAX_REFERENCE_CATEGORIES = 1000
# 2: reference bins per feature (``bins`` for numbers, ``reference`` for categories) for drift
# 3: quartile bins closed on the right, as LIME's, with ``quartile_cuts``
STATS_VERSION = 3


def read_training_data(
    path: str | Path | None = None, *, data: bytes | None = None, fmt: str | None = None
) -> pd.DataFrame:
    """Read CSV or Parquet from a path, or from uploaded bytes."""
    import pandas as pd

    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise InvalidInput(f"training data file {str(p)!r} does not exist", field="training_data.path")
        fmt = fmt or ("parquet" if p.suffix.lower() in (".parquet", ".pq") else "csv")
        source: Any = p
    elif data is not None:
        fmt = fmt or ("parquet" if data[:4] == b"PAR1" else "csv")
        source = io.BytesIO(data)
    else:
        raise InvalidInput("give training data as a path or as an upload", field="training_data")
    try:
        if fmt == "parquet":
            return pd.read_parquet(source)
        if fmt == "csv":
            return pd.read_csv(source)
    except Exception as exc:
        raise InvalidInput(f"cannot read training data as {fmt}: {exc}", field="training_data") from None
    raise InvalidInput(f"training data format must be csv or parquet, not {fmt!r}", field="training_data.format")


def _num(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _counts(series: pd.Series) -> dict[str, int]:
    vc = series.dropna().value_counts()
    return {_key(k): int(v) for k, v in vc.items()}


def _key(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    return v if isinstance(v, str) else str(v) if not isinstance(v, (int, float, bool)) else v


def numeric_statistics(values: np.ndarray) -> dict[str, Any]:
    x = values[np.isfinite(values)]
    out: dict[str, Any] = {"type": "numeric", "count": int(x.size), "missing": int(values.size - x.size)}
    if x.size == 0:
        return out
    xs = np.sort(x)  # once: quantiles, distinct values and bin counts all read the sorted values
    q = np.quantile(xs, QUANTILES)
    out.update(
        min=float(xs[0]),
        max=float(xs[-1]),
        mean=float(x.mean()),
        std=float(x.std(ddof=1)) if x.size > 1 else 0.0,
        median=float(np.median(xs)),
        quantiles=[float(v) for v in q],
    )
    # Quartile bins with their moments: LIME-style perturbation samples inside them. The bins are
    # LIME's (QuartileDiscretizer): cut at the distinct quartiles, closed on the right, so a value
    # tied with a quartile (common for integers; capital-gain's quartiles are all 0) falls in the
    # bin it closes, and a feature whose quartiles coincide still splits at them.
    cuts = np.unique(q[[25, 50, 75]])
    idx = np.searchsorted(cuts, x, side="left")
    lows = [float(x.min()), *cuts.tolist()]
    highs = [*cuts.tolist(), float(x.max())]
    bins = []
    for b in range(len(cuts) + 1):
        xb = x[idx == b]
        bins.append(
            {
                "lo": lows[b],
                "hi": highs[b],
                "count": int(xb.size),
                "mean": float(xb.mean()) if xb.size else None,
                "std": float(xb.std()) if xb.size else None,
                "min": float(xb.min()) if xb.size else None,
                "max": float(xb.max()) if xb.size else None,
            }
        )
    out["quartile_cuts"] = cuts.tolist()  # bin b holds cuts[b-1] < x <= cuts[b]
    out["quartile_bins"] = bins
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    uniq, cnt = xs[starts], np.diff(np.r_[starts, xs.size])
    if uniq.size <= MAX_DISTINCT:
        out["distinct"] = {_key(u): int(c) for u, c in zip(uniq.tolist(), cnt.tolist(), strict=True)}
    out["distinct_count"] = int(uniq.size)
    edges = uniq if uniq.size <= MAX_DISTINCT else np.unique(q)
    counts = _sorted_bin_counts(edges, xs)
    counts[0] += int(np.isneginf(values).sum())  # infinities are not statistics, but they do have a bin
    counts[-2] += int(np.isposinf(values).sum())
    counts[-1] = int(np.isnan(values).sum())
    out["bins"] = {"edges": [float(e) for e in edges], "counts": counts.tolist()}
    return out


def _sorted_bin_counts(edges: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``bin_counts`` of sorted finite values, by binary search of the edges (O(k log n))."""
    k = len(edges)
    left = np.searchsorted(xs, edges, side="left")
    top = int(np.searchsorted(xs, edges[-1], side="right"))
    out = np.zeros(k + 3, dtype=np.int64)
    out[0] = left[0]
    out[1:k] = np.diff(left)
    out[k] = top - left[-1]
    out[k + 1] = xs.size - top
    return out


def bin_index(edges: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The reference bin of each value; the one binning rule shared by training and monitoring.

    With ``k`` sorted edges there are ``k + 3`` bins: ``0`` below the training minimum,
    ``i + 1`` for ``edges[i] <= x < edges[i + 1]`` (the last, ``k``, is the point ``edges[-1]``,
    the training maximum), ``k + 1`` above the maximum, ``k + 2`` missing (NaN). Edges are the
    distinct training values when there are at most ``MAX_DISTINCT`` of them (every value its
    own bin), else the distinct training percentiles.
    """
    k = len(edges)
    idx = np.searchsorted(edges, x, side="right")
    idx[x > edges[-1]] = k + 1
    idx[np.isnan(x)] = k + 2
    return idx


def bin_counts(edges: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.bincount(bin_index(np.asarray(edges, dtype=np.float64), x), minlength=len(edges) + 3)


def categorical_statistics(series: pd.Series) -> dict[str, Any]:
    counts = _counts(series)
    total = int(series.notna().sum())
    mode = max(counts, key=lambda k: counts[k]) if counts else None
    return {
        "type": "categorical",
        "count": total,
        "missing": int(series.isna().sum()),
        "distinct": counts,
        "distinct_count": len(counts),
        "mode": mode,
        "reference": reference_categories(series),
    }


def reference_categories(series: pd.Series) -> dict[str, Any]:
    """The categories drift is measured on, most frequent first (ties by value), as JSON values
    of their own type (dictionary keys would turn ``1`` and ``True`` into text). ``counts`` has
    one more cell, every other value (rare categories beyond ``MAX_REFERENCE_CATEGORIES``), then
    the missing count; ``values`` are the categories as numbers when the column is numeric or
    boolean, as they arrive in a record batch."""
    import pandas as pd

    vc = series.dropna().value_counts()
    keys = [_key(k) for k in vc.index]
    order = sorted(range(len(keys)), key=lambda i: (-int(vc.iloc[i]), str(keys[i])))
    kept = order[:MAX_REFERENCE_CATEGORIES]
    counts = [int(vc.iloc[i]) for i in kept]
    other = int(vc.sum()) - sum(counts)
    out: dict[str, Any] = {
        "categories": [keys[i] for i in kept],
        "counts": [*counts, other, int(series.isna().sum())],
    }
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        out["values"] = [float(keys[i]) for i in kept]
    return out


def compute_statistics(
    df: pd.DataFrame,
    *,
    feature_fields: list[str],
    categorical_fields: list[str],
    label_column: str | None,
    problem_type: str,
) -> dict[str, Any]:
    """Statistics of a training frame, as plain JSON."""
    import pandas as pd

    missing = [c for c in feature_fields if c not in df.columns]
    if missing:
        raise InvalidInput(f"training data lacks feature columns {missing}", field="training_data")
    if label_column and label_column not in df.columns:
        raise InvalidInput(f"training data lacks the label column {label_column!r}", field="label_column")
    features: dict[str, Any] = {}
    cats = set(categorical_fields)
    for name in feature_fields:
        col = df[name]
        if name in cats or not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            stats = categorical_statistics(col)
            if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
                stats["numeric_codes"] = True
        else:
            stats = numeric_statistics(col.to_numpy(dtype=np.float64, na_value=np.nan))
        features[name] = stats
    out: dict[str, Any] = {
        "version": STATS_VERSION,
        "rows": len(df),
        "data_hash": data_hash(df, [*feature_fields, *([label_column] if label_column else [])]),
        "features": features,
        "feature_fields": list(feature_fields),
        "categorical_fields": [f for f in feature_fields if features[f]["type"] == "categorical"],
    }
    if label_column:
        label = df[label_column]
        if problem_type == "regression":
            out["label"] = {
                "column": label_column,
                **numeric_statistics(label.to_numpy(dtype=np.float64, na_value=np.nan)),
            }
        else:
            out["label"] = {"column": label_column, "type": "categorical", "classes": _counts(label)}
    return out


def data_hash(df: pd.DataFrame, columns: list[str]) -> str:
    """A digest of the training rows' content: what was learned from them is rebuilt when it changes."""
    import hashlib

    import pandas as pd

    h = hashlib.sha256("\x00".join(columns).encode())
    for c in columns:  # column by column: no copy of the frame
        h.update(pd.util.hash_pandas_object(df[c], index=False).to_numpy().tobytes())
    return h.hexdigest()


def training_labels(df: pd.DataFrame, label_column: str) -> list[Any]:
    """The sorted distinct labels: scikit-learn's ``classes_`` order, the default probability order."""
    values = df[label_column].dropna().unique().tolist()
    try:
        return sorted(_key(v) for v in values)
    except TypeError:
        return sorted((_key(v) for v in values), key=str)

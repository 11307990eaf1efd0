"""Training rows in the shape live records have: arrays per feature as a ``RecordBatch`` holds them.

The drift detector and the consistency constraints are learned from the training data and
applied to record batches; converting the training frame with the same rules (by the
subscription's column kinds) makes a value compare equal whichever way it arrived.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from scrutiny.core.schema import Kind, Schema

if TYPE_CHECKING:
    import pandas as pd


def frame_columns(frame: pd.DataFrame, schema: Schema) -> dict[str, np.ndarray]:
    """``{feature: array}``: float64 with NaN for numbers, object arrays with None for text and booleans."""
    import pandas as pd

    out: dict[str, np.ndarray] = {}
    for col in schema:
        if col.name not in frame.columns:
            continue
        s = frame[col.name]
        if col.kind in (Kind.INT, Kind.FLOAT):
            out[col.name] = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            present = s.notna().to_numpy()
            values = np.full(len(s), None, dtype=object)
            kept = s[present]
            kept = kept.astype(bool) if col.kind is Kind.BOOL else kept.astype(str)
            values[present] = kept.to_numpy().astype(object)  # Python bools and str, as ingest makes them
            out[col.name] = values
    return out

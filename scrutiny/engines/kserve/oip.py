"""Open Inference Protocol (KServe V2, MLServer, Triton) tensors <-> the common table.

Two request layouts (engines.md §3):

* **tensor**: every feature numeric, one input ``[n, k]`` in feature order, row-major, FP64
  unless the model's metadata declares another datatype;
* **columns**: one named, typed input ``[n, 1]`` per field and ``parameters.content_type: "pd"``,
  which MLServer decodes into a DataFrame.

JSON cannot carry null or NaN inside a tensor: such a value is an error naming its row and
field. Responses: each output is one column, ``[n]``/``[n, 1]`` a scalar per row and ``[n, k]`` a
k-vector per row; ``output_roles`` says which output is the prediction and which the
probability (``predict`` and ``predict_proba`` by default, MLServer's scikit-learn names).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scrutiny.core.scoring_format import ScoringRequest, ScoringResponse
from scrutiny.engines import lists
from scrutiny.engines.base import ModelContext
from scrutiny.errors import InvalidInput

LAYOUTS = ("tensor", "columns")
DEFAULT_ROLES = {"predict": "prediction", "predict_proba": "probability"}
_INT = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_FLOAT = {"FP16", "FP32", "FP64"}
_SCHEMA_TYPE = {"BOOL": "boolean", "BYTES": "string", **dict.fromkeys(_INT, "long"), **dict.fromkeys(_FLOAT, "double")}

Fail = Callable[[str], Exception]


@dataclass
class Options:
    layout: str | None = None  # tensor | columns | None (decide from metadata, then from the data)
    input_name: str | None = None
    output_roles: dict[str, str] = field(default_factory=dict)
    outputs: list[str] | None = None
    output_mode: str = "auto"
    inputs_meta: list[dict[str, Any]] = field(default_factory=list)
    outputs_meta: list[dict[str, Any]] = field(default_factory=list)


def input_schema(inputs: list[dict[str, Any]]) -> list[dict[str, str]] | None:
    """Model metadata inputs named one per column -> ``[{"name", "type"}]`` (else None)."""
    if len(inputs) < 2:
        return None
    out = []
    for i in inputs:
        shape = i.get("shape") or []
        if (
            not i.get("name")
            or i.get("datatype") not in _SCHEMA_TYPE
            or len(shape) > 2
            or (len(shape) == 2 and shape[1] != 1)
        ):
            return None
        out.append({"name": str(i["name"]), "type": _SCHEMA_TYPE[i["datatype"]]})
    return out


# -- requests ----------------------------------------------------------------------------------


def encode(request: ScoringRequest, context: ModelContext, opts: Options) -> dict[str, Any]:
    fields, values = lists.ordered(request, context)
    n = len(values)
    columns = [list(c) for c in zip(*values, strict=True)] if n else [[] for _ in fields]
    kinds = [_kind(col, f) for col, f in zip(columns, fields, strict=True)]
    layout = opts.layout or _auto_layout(fields, kinds, opts.inputs_meta)
    body: dict[str, Any] = {"id": str(uuid.uuid4())}
    if layout == "tensor":
        body["inputs"] = [_tensor_input(fields, values, columns, kinds, opts)]
    else:
        declared = {i.get("name"): i.get("datatype") for i in opts.inputs_meta}
        body["parameters"] = {"content_type": "pd"}
        body["inputs"] = [
            _column_input(f, col, kind, declared.get(f)) for f, col, kind in zip(fields, columns, kinds, strict=True)
        ]
    outputs = _requested_outputs(context, opts)
    if outputs:
        body["outputs"] = [{"name": o} for o in outputs]
    return body


def _kind(col: list[Any], name: str) -> str:
    """The OIP datatype of a column: INT64, FP64, BOOL or BYTES; a null is an error naming its row."""
    types = set(map(type, col))
    if type(None) in types:
        row = col.index(None) + 1
        raise InvalidInput("a tensor cannot carry null: JSON has no missing value inside a tensor", row=row, field=name)
    if types <= {int}:
        return "INT64"
    if types <= {int, float}:
        arr = np.asarray(col, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise InvalidInput(f"a tensor cannot carry {col[int(bad[0])]!r}", row=int(bad[0]) + 1, field=name)
        return "FP64"
    if types <= {bool}:
        return "BOOL"
    if types <= {str}:
        return "BYTES"
    odd = next(v for v in col if not isinstance(v, str))
    raise InvalidInput(f"a column mixes text and {type(odd).__name__}", row=col.index(odd) + 1, field=name)


def _auto_layout(fields: list[str], kinds: list[str], inputs_meta: list[dict[str, Any]]) -> str:
    names = {i.get("name") for i in inputs_meta}
    if len(inputs_meta) > 1 or (inputs_meta and set(fields) <= names and len(fields) == 1):
        return "columns"
    if len(inputs_meta) == 1:
        return "tensor"
    return "tensor" if all(k in ("INT64", "FP64") for k in kinds) else "columns"


def _tensor_input(
    fields: list[str], values: list[list[Any]], columns: list[list[Any]], kinds: list[str], opts: Options
) -> dict[str, Any]:
    for f, k, col in zip(fields, kinds, columns, strict=True):
        if k not in ("INT64", "FP64"):
            bad = next(i for i, v in enumerate(col) if isinstance(v, (str, bool)))
            raise InvalidInput(
                "the tensor layout takes numbers only (set input_layout: columns for mixed types)", row=bad + 1, field=f
            )
    meta = opts.inputs_meta[0] if len(opts.inputs_meta) == 1 else {}
    datatype = str(meta.get("datatype") or "FP64")
    mat = np.asarray(values, dtype=np.float64).reshape(len(values), len(fields))
    if datatype in _INT:
        frac = np.flatnonzero((mat != np.round(mat)).any(axis=1))
        if frac.size:
            r = int(frac[0])
            c = int(np.flatnonzero(mat[r] != np.round(mat[r]))[0])
            raise InvalidInput(f"the model takes {datatype}, not {values[r][c]!r}", row=r + 1, field=fields[c])
        data: list[Any] = mat.astype(np.int64).ravel().tolist()
    elif datatype in _FLOAT:
        data = mat.ravel().tolist()
    else:
        raise InvalidInput(f"the model's input datatype {datatype} is not numeric: use input_layout columns")
    name = opts.input_name or meta.get("name") or "input-0"
    return {"name": name, "shape": [len(values), len(fields)], "datatype": datatype, "data": data}


def _column_input(name: str, col: list[Any], kind: str, declared: str | None) -> dict[str, Any]:
    datatype = declared or kind
    if kind == "BYTES" and datatype != "BYTES":
        raise InvalidInput(f"the model declares {datatype}, the values are text", row=1, field=name)
    data: list[Any] = col
    if datatype in _FLOAT and kind == "INT64":
        data = [float(v) for v in col]
    out: dict[str, Any] = {"name": name, "shape": [len(col), 1], "datatype": datatype, "data": data}
    if datatype == "BYTES":
        out["parameters"] = {"content_type": "str"}
    return out


def _requested_outputs(context: ModelContext, opts: Options) -> list[str] | None:
    if opts.outputs:
        return list(opts.outputs)
    if opts.output_roles:
        return list(opts.output_roles)
    if opts.outputs_meta:
        return None  # the server returns every declared output
    if context.problem_type in ("binary", "multiclass"):
        return ["predict", "predict_proba"]  # MLServer's scikit-learn runtime answers predict only by default
    return None


def decode_request(data: Any, context: ModelContext, opts: Options) -> ScoringRequest:
    """An inference request (flat or nested data, tensor or columns) -> the common table."""
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list) or not data["inputs"]:
        raise InvalidInput("an inference request has a non-empty inputs list", field="inputs")
    inputs = data["inputs"]
    arrays = [_array(i, what=f"inputs[{k}]") for k, i in enumerate(inputs)]
    feats = context.feature_fields
    single_named = len(inputs) == 1 and feats and inputs[0].get("name") in feats and len(feats) == 1
    if len(inputs) == 1 and not single_named:
        arr = arrays[0]
        mat = arr.reshape(arr.shape[0], -1) if arr.ndim else arr.reshape(1, 1)
        if not feats:
            raise InvalidInput(
                "a tensor request needs the subscription's feature_fields to name its columns", field="inputs"
            )
        if mat.shape[1] != len(feats):
            raise InvalidInput(f"the tensor has {mat.shape[1]} columns for {len(feats)} features", field="inputs")
        return ScoringRequest(list(feats), mat.tolist())
    names, cols = [], []
    for i, arr in zip(inputs, arrays, strict=True):
        if arr.ndim > 2 or (arr.ndim == 2 and arr.shape[1] != 1):
            raise InvalidInput(f"input {i.get('name')!r} is not one value per row", field=str(i.get("name")))
        names.append(str(i.get("name")))
        cols.append(arr.reshape(-1).tolist())
    lengths = {len(c) for c in cols}
    if len(lengths) > 1:
        raise InvalidInput(f"the inputs differ in row count ({sorted(lengths)})", field="inputs")
    return ScoringRequest(names, [list(r) for r in zip(*cols, strict=True)])


def _array(tensor: Any, *, what: str) -> np.ndarray:
    """A tensor's data reshaped by its shape (flat or nested data both accepted); BYTES as str."""
    if not isinstance(tensor, dict) or "data" not in tensor:
        raise InvalidInput(f"{what} needs name, shape, datatype and data", field=what)
    shape = tensor.get("shape")
    datatype = tensor.get("datatype")
    data = tensor["data"]
    if datatype == "BYTES":
        arr = np.asarray(_flatten(data), dtype=object)
        arr = np.array([v.decode() if isinstance(v, bytes) else v for v in arr], dtype=object)
    elif datatype in _INT:
        arr = np.asarray(_flatten(data), dtype=np.int64)
    elif datatype == "BOOL":
        arr = np.asarray(_flatten(data), dtype=bool)
    else:
        arr = np.asarray(_flatten(data), dtype=np.float64)
    if isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape):
        if int(np.prod(shape)) != arr.size:
            raise InvalidInput(f"{what} has {arr.size} values for shape {shape}", field=what)
        return arr.reshape(shape)
    return arr


def _flatten(data: Any) -> list[Any]:
    if isinstance(data, list) and data and isinstance(data[0], list):
        return np.asarray(data, dtype=object).ravel().tolist()
    return data if isinstance(data, list) else [data]


# -- responses ---------------------------------------------------------------------------------


def decode_response(
    data: Any, context: ModelContext, opts: Options, n_rows: int | None, expected_id: str | None, fail: Fail
) -> ScoringResponse:
    if not isinstance(data, dict) or not isinstance(data.get("outputs"), list):
        raise fail('an inference response is {"outputs": [...]}')
    echoed = data.get("id")
    if expected_id is not None and echoed not in (None, "", expected_id):
        raise fail(f"the response id {echoed!r} is not the request id {expected_id!r}")
    outputs = data["outputs"]
    if not outputs:
        raise fail("the response has no outputs")
    names: list[str] = []
    columns: list[list[Any]] = []
    shapes: list[int] = []
    for k, out in enumerate(outputs):
        name = str(out.get("name") if isinstance(out, dict) else k)
        try:
            arr = _array(out, what=f"output {name!r}")
        except (InvalidInput, ValueError, TypeError) as exc:
            raise fail(f"output {name!r} cannot be read: {getattr(exc, 'reason', exc)}") from None
        if arr.ndim == 0 or arr.ndim > 2:
            raise fail(f"output {name!r} has shape {list(arr.shape)}: expected [n], [n, 1] or [n, k]")
        if n_rows is not None and arr.shape[0] != n_rows:
            raise fail(f"output {name!r} has {arr.shape[0]} rows for {n_rows} input rows")
        width = 1 if arr.ndim == 1 else arr.shape[1]
        col = arr.reshape(-1).tolist() if width == 1 else arr.tolist()
        names.append(name)
        columns.append(col)
        shapes.append(width)
    fields = [_role(name, width, len(outputs), context, opts) for name, width in zip(names, shapes, strict=True)]
    if len(set(fields)) != len(fields):
        raise fail(f"two outputs map to the same column: {fields}")
    return ScoringResponse(fields, [list(r) for r in zip(*columns, strict=True)])


def _role(name: str, width: int, n_outputs: int, context: ModelContext, opts: Options) -> str:
    role = opts.output_roles.get(name)
    if role is None:
        role = DEFAULT_ROLES.get(name)
    if role is None and n_outputs == 1:  # one unnamed output: read it by shape like a predictions list
        probability = width > 1 or (opts.output_mode == "predict_proba" and context.problem_type != "regression")
        role = "probability" if probability else "prediction"
    if role == "prediction":
        return context.prediction_field
    if role == "probability":
        return (context.probability_fields or ["probability"])[0]
    return role or name

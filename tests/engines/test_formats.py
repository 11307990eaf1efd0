"""Native shapes the real servers in the `servers` tests do not produce, read by the MLflow and
KServe adapters: MLflow 1.x bare lists, columns, single-column vectors, scalar probabilities,
malformed answers, and the binding checks. No server is needed: these are the adapters' own
conversions, fed the documented bodies (engines.md §2-§4)."""

from __future__ import annotations

import httpx
import orjson
import pytest

from scrutiny.core.outputs import normalize_rows
from scrutiny.engines import BindingConfig, Deployment, ModelContext, NativeRequest, NativeResponse
from scrutiny.engines.errors import EngineResponseShape
from scrutiny.engines.kserve.engine import KServeEngine
from scrutiny.engines.mlflow.engine import MlflowEngine
from scrutiny.errors import InvalidInput

BINARY = ModelContext(feature_fields=["a", "b"], labels=["No Risk", "Risk"], problem_type="binary")
DEP = Deployment(id="d1", name="d1", scoring_url="http://127.0.0.1:9/invocations")


def mlflow(**creds: object) -> MlflowEngine:
    c = {"url": "http://127.0.0.1:9", **creds}
    MlflowEngine.check_credentials(c)
    return MlflowEngine(BindingConfig(id="b", name="mlf", engine_type="mlflow", settings={}, credentials=c))


def kserve(**creds: object) -> KServeEngine:
    c = {"url": "http://127.0.0.1:9", **creds}
    KServeEngine.check_credentials(c)
    return KServeEngine(BindingConfig(id="b", name="ks", engine_type="kserve", settings={}, credentials=c))


def decode(engine, body: object, n: int, ctx: ModelContext = BINARY, dep: Deployment = DEP):  # type: ignore[no-untyped-def]
    return engine.decode_response(dep, NativeResponse(200, orjson.dumps(body)), ctx, n)


@pytest.mark.parametrize(
    ("body", "fields", "values"),
    [
        ({"predictions": ["No Risk", "Risk"]}, ["prediction"], [["No Risk"], ["Risk"]]),
        (["No Risk", "Risk"], ["prediction"], [["No Risk"], ["Risk"]]),  # MLflow 1.x: bare list
        ([[0.9, 0.1], [0.2, 0.8]], ["probability"], [[[0.9, 0.1]], [[0.2, 0.8]]]),
        ({"predictions": [[1], [0]]}, ["prediction"], [[1.0], [0.0]]),  # [n, 1] is a scalar per row
        (
            {"predictions": {"prediction": ["Risk", "No Risk"], "probability": [[0.3, 0.7], [0.6, 0.4]]}},
            ["prediction", "probability"],
            [["Risk", [0.3, 0.7]], ["No Risk", [0.6, 0.4]]],
        ),
        (
            [{"prediction": "Risk", "p": 0.7}, {"prediction": "No Risk", "p": 0.4}],
            ["prediction", "p"],
            [["Risk", 0.7], ["No Risk", 0.4]],
        ),
    ],
    ids=["scalars", "mlflow1-bare", "vectors", "column-vector", "columns", "records"],
)
def test_mlflow_response_shapes(body: object, fields: list[str], values: list[list[object]]) -> None:
    resp = decode(mlflow(), body, 2)
    assert resp.fields == fields and resp.values == values


def test_scalar_probabilities_with_output_mode_predict_proba() -> None:
    resp = decode(mlflow(output_mode="predict_proba"), {"predictions": [0.25, 0.75]}, 2)
    assert resp.fields == ["probability"]
    out = normalize_rows(
        resp.fields,
        resp.values,
        classification=True,
        labels=["No Risk", "Risk"],
        prediction_field="prediction",
        probability_fields=["probability"],
    )
    assert out.probability.tolist() == [[0.75, 0.25], [0.25, 0.75]]  # type: ignore[union-attr]
    assert out.prediction.tolist() == ["No Risk", "Risk"] and out.derived


def test_per_class_probability_fields_get_one_column_each() -> None:
    ctx = ModelContext(
        feature_fields=["a"], labels=["x", "y", "z"], problem_type="multiclass", probability_fields=["px", "py", "pz"]
    )
    resp = decode(mlflow(), {"predictions": [[0.1, 0.2, 0.7]]}, 1, ctx)
    assert resp.fields == ["px", "py", "pz"] and resp.values == [[0.1, 0.2, 0.7]]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"predictions": [1, [0.5, 0.5]]}, "mix"),
        ({"predictions": [[0.5, 0.5], [1.0]]}, "differ in length"),
        ({"predictions": "Risk"}, "must be a list"),
        ({"predictions": [["a", "b"], ["c", "d"]]}, "must hold numbers"),
    ],
)
def test_malformed_mlflow_answers_name_engine_and_deployment(body: object, match: str) -> None:
    with pytest.raises(EngineResponseShape, match=match) as err:
        decode(mlflow(), body, 2)
    assert "'mlf'" in err.value.message and "deployment 'd1'" in err.value.message


def test_output_mode_predict_refuses_vectors() -> None:
    with pytest.raises(EngineResponseShape, match="output_mode is predict"):
        decode(mlflow(output_mode="predict"), {"predictions": [[0.5, 0.5]]}, 1)


def test_non_json_answer_is_a_bad_response() -> None:
    from scrutiny.engines.errors import EngineBadResponse

    with pytest.raises(EngineBadResponse, match="not JSON"):
        mlflow().decode_response(DEP, NativeResponse(200, b"<html>502</html>", "text/html"), BINARY, 1)


def test_csv_request_round_trip_keeps_quotes_nulls_and_types() -> None:
    e = mlflow(request_format="csv")
    from scrutiny.core.scoring_format import ScoringRequest

    req = ScoringRequest(["a", "b", "c"], [[1, 'say "hi", ok', 2.5], [None, "line\nbreak", None]])
    native = e.encode_request(DEP, req, BINARY)
    assert native.content_type == "text/csv"
    back = e.decode_request(DEP, native, BINARY)
    assert back.fields == ["a", "b", "c"] and back.values == req.values


@pytest.mark.parametrize(
    ("creds", "field"),
    [
        ({"url": "ftp://x"}, "credentials.url"),
        ({"servers": [{"url": "http://a:1"}, {"url": "http://a:1"}]}, "credentials.servers[1].name"),
        ({"servers": [{"name": "a", "url": "http://a:1", "typo": 1}]}, "credentials.servers[0].typo"),
        ({"url": "http://a:1", "request_format": "json"}, "credentials.request_format"),
        ({"url": "http://a:1", "output_mode": "proba"}, "credentials.output_mode"),
        ({"servers": [{"url": "http://a:1", "model_uri": "runs:/abc/model"}]}, "credentials.servers[0].model_uri"),
        ({"url": "http://a:1", "username": "u"}, "credentials.password"),
        ({}, "credentials.url"),
    ],
)
def test_mlflow_credentials_are_checked_naming_the_field(creds: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        MlflowEngine.check_credentials(creds)
    assert err.value.context["field"] == field


@pytest.mark.parametrize(
    ("creds", "field"),
    [
        ({"protocol": "v3"}, "credentials.protocol"),
        ({"input_layout": "rows"}, "credentials.input_layout"),
        ({"instance_format": "csv"}, "credentials.instance_format"),
        ({"output_roles": {"predict": 1}}, "credentials.output_roles"),
        ({"models": [{"version": "1"}]}, "credentials.models[0].name"),
    ],
)
def test_kserve_credentials_are_checked_naming_the_field(creds: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        KServeEngine.check_credentials({"url": "http://a:1", **creds})
    assert err.value.context["field"] == field


def test_binding_shows_settings_and_hides_secrets(client: httpx.Client) -> None:
    r = client.post(
        "/v1/bindings",
        json={
            "name": "ks",
            "engine_type": "kserve",
            "credentials": {"url": "http://127.0.0.1:9", "protocol": "v2", "token": "t0p", "models": ["credit"]},
        },
    )
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["settings"]["protocol"] == "v2" and b["settings"]["models"] == ["credit"]
    assert "t0p" not in r.text and b["credential_keys"] == ["token"]
    r = client.post(
        "/v1/bindings",
        json={"name": "m", "engine_type": "mlflow", "credentials": {"url": "http://x:1", "request_format": "xml"}},
    )
    assert r.status_code in (400, 422) and "request_format" in r.text


# -- Open Inference Protocol -----------------------------------------------------------------


def test_oip_outputs_shapes_bytes_and_roles() -> None:
    e = kserve(protocol="v2", output_roles={"label": "prediction", "scores": "probability"})
    body = {
        "model_name": "m",
        "outputs": [
            {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["Risk", "No Risk"]},
            {"name": "scores", "shape": [2, 2], "datatype": "FP32", "data": [[0.25, 0.75], [0.5, 0.5]]},  # nested
            {"name": "extra", "shape": [2, 1], "datatype": "INT64", "data": [7, 8]},
        ],
    }
    resp = decode(e, body, 2)
    assert resp.fields == ["prediction", "probability", "extra"]
    assert resp.values == [["Risk", [0.25, 0.75], 7], ["No Risk", [0.5, 0.5], 8]]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"outputs": [{"name": "predict", "shape": [3], "datatype": "FP64", "data": [1, 2]}]}, "2 values for shape"),
        ({"outputs": [{"name": "predict", "shape": [3], "datatype": "FP64", "data": [1, 2, 3]}]}, "3 rows for 2"),
        ({"outputs": [{"name": "predict", "shape": [2, 2, 2], "datatype": "FP64", "data": [0] * 8}]}, "shape"),
        ({"outputs": []}, "no outputs"),
        ({"error": "model failed"}, "model failed"),
        ({"predictions": [1, 2]}, "outputs"),
    ],
)
def test_oip_malformed_answers(body: object, match: str) -> None:
    with pytest.raises(EngineResponseShape, match=match):
        decode(kserve(protocol="v2"), body, 2)


def test_oip_single_unnamed_output_is_read_by_shape() -> None:
    e = kserve(protocol="v2")
    resp = decode(
        e, {"outputs": [{"name": "output-0", "shape": [2, 2], "datatype": "FP32", "data": [0.1, 0.9, 0.8, 0.2]}]}, 2
    )
    assert resp.fields == ["probability"]
    resp = decode(e, {"outputs": [{"name": "output-0", "shape": [2, 1], "datatype": "INT32", "data": [1, 0]}]}, 2)
    assert resp.fields == ["prediction"] and resp.values == [[1], [0]]


def test_oip_encoding_uses_declared_datatypes_and_checks_values() -> None:
    from scrutiny.core.scoring_format import ScoringRequest

    e = kserve(protocol="v2")
    dep = Deployment(
        id="m",
        name="m",
        scoring_url="http://127.0.0.1:9/v2/models/m/infer",
        options={
            "metadata": {"inputs": [{"name": "x", "datatype": "INT32", "shape": [-1, 2]}], "outputs": [{"name": "y"}]}
        },
    )
    body = orjson.loads(e.encode_request(dep, ScoringRequest(["a", "b"], [[1, 2.0], [3, 4]]), BINARY).body)
    assert body["inputs"] == [{"name": "x", "shape": [2, 2], "datatype": "INT32", "data": [1, 2, 3, 4]}]
    assert "outputs" not in body  # the metadata declares them: the server returns them all
    with pytest.raises(InvalidInput) as err:
        e.encode_request(dep, ScoringRequest(["a", "b"], [[1, 2], [3, 4.5]]), BINARY)
    assert err.value.context["row"] == 2 and err.value.context["field"] == "b"
    with pytest.raises(InvalidInput) as err:
        e.encode_request(dep, ScoringRequest(["a", "b"], [[1, float("nan")]]), BINARY)
    assert err.value.context["row"] == 1 and err.value.context["field"] == "b"
    cols = Deployment(id="m", name="m", scoring_url="http://x/infer", options={"input_layout": "columns"})
    body = orjson.loads(
        e.encode_request(cols, ScoringRequest(["a", "b", "c"], [[1, 0.5, True], [2, 1.5, False]]), BINARY).body
    )
    assert [(i["name"], i["datatype"]) for i in body["inputs"]] == [("a", "INT64"), ("b", "FP64"), ("c", "BOOL")]
    with pytest.raises(InvalidInput, match="tensor layout takes numbers"):
        e.encode_request(
            Deployment(id="m", name="m", options={"input_layout": "tensor"}),
            ScoringRequest(["a", "s"], [[1, "x"]]),
            ModelContext(),
        )


def test_v1_decode_request_forms() -> None:
    e = kserve(protocol="v1")
    ctx = ModelContext(feature_fields=["a", "b"])
    for body in (
        {"instances": [[1, "x"], [2, "y"]]},
        {"instances": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]},
        {"inputs": {"a": [1, 2], "b": ["x", "y"]}},
    ):
        t = e.decode_request(DEP, NativeRequest(orjson.dumps(body)), ctx)
        assert t.fields == ["a", "b"] and t.values == [[1, "x"], [2, "y"]]
    with pytest.raises(InvalidInput, match="instances"):
        e.decode_request(DEP, NativeRequest(b'{"fields": ["a"], "values": [[1]]}'), ctx)


def test_csv_request_takes_the_schema_kinds() -> None:
    e = mlflow()
    ctx = ModelContext(
        feature_fields=["code", "n", "x"], feature_kinds={"code": "string", "n": "integer", "x": "double"}
    )
    t = e.decode_request(DEP, NativeRequest(b"code,n,x,other\n007,1,2,5\n,,,\n", "text/csv"), ctx)
    assert t.fields == ["code", "n", "x", "other"]
    assert t.values == [["007", 1, 2.0, 5], [None, None, None, None]]
    assert [type(v) for v in t.values[0]] == [str, int, float, int]
    with pytest.raises(InvalidInput, match="cannot be read"):
        e.decode_request(DEP, NativeRequest(b"code,n\nx,abc\n", "text/csv"), ctx)

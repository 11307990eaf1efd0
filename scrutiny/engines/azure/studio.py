"""Azure Machine Learning Studio web services: the new (Resource Manager) format, classic
request-response services, and Designer real-time endpoints (engines.md §6).

Discovery lists the subscription's "new" web services through the management API (``nextLink``
paging), reads each one's key with ``listKeys`` when it is subscribed, and turns the swagger
location into the execute URL. Classic services and Designer endpoints are registered by hand
as a scoring URL and key (``deployment: {"scoring_url", "credentials": {"token"}, "options":
{"format": "classic" | "designer"}}``).

Deployment options: ``format`` (``new``, ``classic``, ``designer``), ``input_name`` (default
``input1``, ``WebServiceInput0`` for Designer), ``output_name`` (default: the first output),
``global_parameters``, ``output_schema`` (``{column: type}`` to cast string outputs; filled from
the service's own output specification when discovered).

Studio answers every value as a string and a binary model's ``Scored Probabilities`` as one
number, P(second label); multiclass services answer one ``Scored Probabilities for Class "X"``
column per class. The decoder casts by the output schema, assembles the per-class columns into
one vector in the subscription's label order, drops echoed inputs, and names the outputs the
way the subscription reads them.
"""

from __future__ import annotations

from typing import Any

import orjson

from scrutiny.core.scoring_format import ScoringRequest, ScoringResponse
from scrutiny.engines.azure.auth import AzureHttpEngine, resource_group, unique_ids
from scrutiny.engines.base import Deployment, ModelContext, NativeRequest, NativeResponse
from scrutiny.engines.errors import EngineAuthError, EngineResponseShape
from scrutiny.engines.native_tables import (
    Columns,
    NativeShapeError,
    as_labels,
    assemble_class_columns,
    caster,
    floats,
    from_records,
    from_rows,
    output_names,
    record_fields,
    rename_roles,
    to_response,
)
from scrutiny.errors import InvalidInput, NotFound

API_VERSION = "2017-01-01"
FORMATS = ("new", "classic", "designer")
DEFAULT_INPUT = {"new": "input1", "classic": "input1", "designer": "WebServiceInput0"}
SCORED_LABELS = ("Scored Labels", "Scored Label Mean")
SCORED_PROBABILITIES = "Scored Probabilities"
# Studio's column types (ARM ColumnSpecification and classic ColumnTypes) -> subscription kinds.
_SCHEMA_KINDS = {"integer": "integer", "number": "double", "string": "string", "boolean": "boolean"}


def execute_url(swagger_location: str) -> str:
    """``.../swagger.json`` -> ``.../execute?api-version=2.0&format=swagger`` (engines.md §6)."""
    base = swagger_location.split("?")[0]
    if base.endswith("swagger.json"):
        base = base[: -len("swagger.json")]
    return base.rstrip("/") + "/execute?api-version=2.0&format=swagger"


def _table_spec(io_spec: Any) -> tuple[str | None, dict[str, Any]]:
    """(first table's name, its column specifications) of an ARM ServiceInputOutputSpecification."""
    tables = (io_spec or {}).get("properties") if isinstance(io_spec, dict) else None
    if not isinstance(tables, dict) or not tables:
        return None, {}
    name = next(iter(tables))
    columns = (tables[name] or {}).get("properties") or {}
    return name, columns if isinstance(columns, dict) else {}


class AzureStudioEngine(AzureHttpEngine):
    engine_type = "azure_ml_studio"
    aliases = ("azure_machine_learning", "azure_machine_learning_studio")

    # -- discovery ---------------------------------------------------------------------------
    def list_deployments(self) -> list[Deployment]:
        self.require_principal()
        path = f"/subscriptions/{self.management.subscription}/providers/Microsoft.MachineLearning/webServices"
        services = list(self.management.pages(path, api_version=API_VERSION))
        ids = unique_ids([(str(s.get("name")), resource_group(str(s.get("id") or "")) or "") for s in services])
        return [self._deployment(dep_id, s) for dep_id, s in zip(ids, services, strict=True)]

    def get_deployment(self, deployment_id: str) -> Deployment:
        """The web service with its full specification (GET by id) and its key (``listKeys``)."""
        listed = next((d for d in self.list_deployments() if d.id == deployment_id), None)
        if listed is None:
            raise NotFound(f"engine {self.binding.name!r} has no Studio web service {deployment_id!r}")
        rid = str(listed.options["resource_id"])
        full = self.management.call("GET", rid, api_version=API_VERSION, deployment=deployment_id)
        dep = self._deployment(deployment_id, full)
        dep.credentials = {"token": self.fetch_key(dep)}
        return dep

    def fetch_key(self, deployment: Deployment) -> str:
        rid = str(deployment.options["resource_id"])
        keys = self.management.call("GET", f"{rid}/listKeys", api_version=API_VERSION, deployment=deployment.id)
        key = keys.get("primary") or keys.get("secondary")
        if not key:
            raise self.error(EngineAuthError, "listKeys returned no key for the web service", deployment)
        return str(key)

    def _deployment(self, dep_id: str, service: dict[str, Any]) -> Deployment:
        props = service.get("properties") or {}
        name = str(service.get("name") or dep_id)
        swagger = props.get("swaggerLocation")
        input_name, input_columns = _table_spec(props.get("input"))
        output_name, output_columns = _table_spec(props.get("output"))
        options: dict[str, Any] = {"format": "new", "resource_id": service.get("id")}
        if input_name:
            options["input_name"] = input_name
        if output_name:
            options["output_name"] = output_name
        if output_columns:
            options["output_schema"] = {
                c: str((spec or {}).get("type") or "string") for c, spec in output_columns.items()
            }
        asset_properties: dict[str, Any] = {}
        if input_columns:
            asset_properties["input_data_schema"] = [
                {"name": c, "type": _SCHEMA_KINDS.get(str((spec or {}).get("type") or "").lower(), "string")}
                for c, spec in input_columns.items()
            ]
        return Deployment(
            id=dep_id,
            name=str(props.get("title") or name),
            scoring_url=execute_url(str(swagger)) if swagger else None,
            description=str(props.get("description") or f"Azure ML Studio web service {name}"),
            type="online",
            created_at=props.get("createdOn"),
            deployment_rn=service.get("id"),
            status=props.get("provisioningState"),
            asset={
                "asset_id": name,
                "name": str(props.get("title") or name),
                "asset_type": "model",
                "url": swagger,
                "created_at": props.get("createdOn"),
                "runtime_environment": f"Azure ML Studio ({props.get('packageType') or 'Graph'})",
            },
            asset_properties=asset_properties,
            options=options,
        )

    # -- conversion --------------------------------------------------------------------------
    def _format(self, deployment: Deployment, context: ModelContext) -> tuple[str, dict[str, Any]]:
        options = {**deployment.options, **context.options}
        fmt = str(options.get("format") or "new")
        if fmt not in FORMATS:
            raise InvalidInput(f"format must be one of {', '.join(FORMATS)}", field="deployment.options.format")
        return fmt, options

    def encode_request(self, deployment: Deployment, request: ScoringRequest, context: ModelContext) -> NativeRequest:
        fmt, options = self._format(deployment, context)
        name = str(options.get("input_name") or DEFAULT_INPUT[fmt])
        table: Any
        if fmt == "classic":
            table = {"ColumnNames": request.fields, "Values": request.values}
        else:
            table = [dict(zip(request.fields, row, strict=True)) for row in request.values]
        body = {"Inputs": {name: table}, "GlobalParameters": dict(options.get("global_parameters") or {})}
        return NativeRequest(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))

    def decode_request(self, deployment: Deployment, native: NativeRequest, context: ModelContext) -> ScoringRequest:
        fmt, options = self._format(deployment, context)
        try:
            data = orjson.loads(native.body)
        except orjson.JSONDecodeError:
            raise InvalidInput("the request body is not JSON") from None
        inputs = data.get("Inputs") if isinstance(data, dict) else None
        if not isinstance(inputs, dict) or not inputs:
            raise InvalidInput("a Studio request needs an 'Inputs' object", field="Inputs")
        name = str(options.get("input_name") or DEFAULT_INPUT[fmt])
        table = inputs.get(name, next(iter(inputs.values())))
        if isinstance(table, dict) and isinstance(table.get("ColumnNames"), list):
            return ScoringRequest(list(table["ColumnNames"]), [list(r) for r in table.get("Values") or []])
        if isinstance(table, list):
            try:
                cols = from_records(table, f"Inputs.{name}")
            except NativeShapeError as exc:
                raise InvalidInput(str(exc), field=f"Inputs.{name}") from None
            t = to_response(cols)
            return ScoringRequest(t.fields, t.values)
        raise InvalidInput(f"Inputs.{name} is neither a list of records nor ColumnNames/Values", field=f"Inputs.{name}")

    def decode_response(
        self, deployment: Deployment, native: NativeResponse, context: ModelContext, n_rows: int | None
    ) -> ScoringResponse:
        _, options = self._format(deployment, context)
        data = self.json(native, deployment)
        try:
            return to_response(self._outputs(data, options, context))
        except NativeShapeError as exc:
            raise self.error(EngineResponseShape, str(exc), deployment, body=native.body) from None

    @staticmethod
    def _outputs(data: Any, options: dict[str, Any], context: ModelContext) -> Columns:
        """The output table's output columns (echoed inputs dropped), cast and named."""
        results = data.get("Results") if isinstance(data, dict) else None
        if not isinstance(results, dict) or not results:
            raise NativeShapeError("response has no 'Results' object")
        name = options.get("output_name")
        if name is not None and name not in results:
            raise NativeShapeError(f"response has no output {name!r} (outputs: {sorted(results)})")
        out = results[name] if name is not None else next(iter(results.values()))
        types = dict(options.get("output_schema") or {})
        named = [context.prediction_field, *context.probability_fields]
        if isinstance(out, list):  # new web services and Designer: a list of records
            keep = output_names(
                record_fields(out, "Results"), context.feature_fields, output_prefix="Scored ", also=named
            )
            columns = from_records(out, "Results", only=keep)
        else:
            value = out.get("value") if isinstance(out, dict) else None
            if not isinstance(value, dict) or not isinstance(value.get("ColumnNames"), list):
                raise NativeShapeError("the output is neither a list of records nor a classic table")
            fields = [str(c) for c in value["ColumnNames"]]
            rows = value.get("Values") or []
            if not isinstance(rows, list) or any(not isinstance(r, list) or len(r) != len(fields) for r in rows):
                raise NativeShapeError("classic output rows do not match its ColumnNames")
            declared = value.get("ColumnTypes") or []
            if isinstance(declared, list) and len(declared) == len(fields):
                types = {**dict(zip(fields, (str(t) for t in declared), strict=True)), **types}
            keep = output_names(fields, context.feature_fields, output_prefix="Scored ", also=named)
            columns = from_rows(fields, rows, only=keep)
        for col in columns:  # Studio answers strings: cast by the declared output types
            cast = caster(types[col]) if col in types else None
            if cast is not None:
                columns[col] = cast(columns[col])
        regression = context.problem_type == "regression"
        for col in SCORED_LABELS:
            if col in columns:
                columns[col] = floats(columns[col]) if regression else as_labels(columns[col], context.labels)
        if SCORED_PROBABILITIES in columns:
            columns[SCORED_PROBABILITIES] = floats(columns[SCORED_PROBABILITIES])
        probs = context.probability_fields
        if not regression and not (len(probs) > 1 and all(p in columns for p in probs)):
            target = probs[0] if len(probs) == 1 else SCORED_PROBABILITIES
            if target not in columns:
                columns = assemble_class_columns(columns, context.labels, target)
        return rename_roles(columns, context, predictions=SCORED_LABELS, probabilities=(SCORED_PROBABILITIES,))


__all__ = ["AzureStudioEngine", "execute_url"]

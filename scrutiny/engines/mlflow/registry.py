"""Read an MLflow tracking server's model registry over its REST API (no ``mlflow`` import).

Used by the MLflow adapter to describe what a scoring server serves: the registered model
version behind a ``model_uri`` (``models:/credit/2``, ``models:/credit@champion``,
``models:/credit/latest``), its creation time and source, and its signature, which becomes the
subscription's input schema. The signature lives in the version's ``MLmodel`` file; it is
read through the artifact proxy (``mlflow-artifacts:/`` URIs, the default of ``mlflow server``
since 2.0). Other artifact stores (s3, file) cannot be read over HTTP: the schema is then left
to the subscription or the first payload.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson

# MLflow column types -> Scrutiny's input schema types.
_TYPES = {
    "string": "string",
    "long": "long",
    "integer": "integer",
    "double": "double",
    "float": "float",
    "boolean": "boolean",
    "binary": "string",
    "datetime": "timestamp",
}
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/]+)|@(?P<alias>[^/]+))?/?$")

Get = Callable[[str, dict[str, Any] | None], Any]  # (path, query) -> JSON, or raises EngineError


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name[/version|/latest|@alias]`` -> (name, version, alias); ValueError otherwise."""
    m = _URI.match(uri.strip())
    if not m:
        raise ValueError(f"{uri!r} is not a registry URI (models:/<name>/<version> or models:/<name>@<alias>)")
    version = m.group("version")
    return m.group("name"), None if version in (None, "latest") else version, m.group("alias")


class Registry:
    """A thin client of ``/api/2.0/mlflow/...``; ``get`` is the adapter's HTTP call (auth, errors)."""

    def __init__(self, get: Get, get_text: Callable[[str], str | None]) -> None:
        self.get = get
        self.get_text = get_text

    def resolve(self, model_uri: str) -> dict[str, Any]:
        """The model version a ``models:/`` URI names (the newest one for ``latest``)."""
        name, version, alias = parse_model_uri(model_uri)
        if alias:
            return dict(self.get("registered-models/alias", {"name": name, "alias": alias})["model_version"])
        if version:
            return dict(self.get("model-versions/get", {"name": name, "version": version})["model_version"])
        versions = self.versions(name)
        if not versions:
            raise LookupError(f"registered model {name!r} has no versions")
        return max(versions, key=lambda v: int(v.get("version") or 0))

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of one registered model, following ``next_page_token``."""
        out: list[dict[str, Any]] = []
        token = None
        while True:
            query: dict[str, Any] = {"filter": f"name='{name}'", "max_results": 200}
            if token:
                query["page_token"] = token
            page = self.get("model-versions/search", query)
            out.extend(page.get("model_versions") or [])
            token = page.get("next_page_token")
            if not token:
                return out

    def latest_versions(self) -> list[dict[str, Any]]:
        """The newest version of every registered model (one paged listing)."""
        out: list[dict[str, Any]] = []
        token = None
        while True:
            query: dict[str, Any] = {"max_results": 100}
            if token:
                query["page_token"] = token
            page = self.get("registered-models/search", query)
            for model in page.get("registered_models") or []:
                latest = model.get("latest_versions") or []
                if latest:
                    out.append(max(latest, key=lambda v: int(v.get("version") or 0)))
            token = page.get("next_page_token")
            if not token:
                return out

    def mlmodel(self, version: dict[str, Any]) -> dict[str, Any] | None:
        """The version's ``MLmodel`` document, when its artifacts are served by the tracking server."""
        uri = self.get("model-versions/get-download-uri", {"name": version["name"], "version": version["version"]})
        artifact_uri = str(uri.get("artifact_uri") or "")
        prefix = "mlflow-artifacts:"
        if not artifact_uri.startswith(prefix):
            return None
        path = artifact_uri[len(prefix) :].lstrip("/")
        if "://" in path:  # mlflow-artifacts://host:port/path: the path after the authority
            path = path.split("://", 1)[1].split("/", 1)[-1]
        text = self.get_text(f"/api/2.0/mlflow-artifacts/artifacts/{quote(path.rstrip('/'))}/MLmodel")
        if text is None:
            return None
        import yaml  # PyYAML comes with uvicorn[standard]; only discovery needs it

        doc = yaml.safe_load(text)
        return doc if isinstance(doc, dict) else None


def signature_schema(mlmodel: dict[str, Any]) -> list[dict[str, str]] | None:
    """A column-based signature's inputs as ``[{"name", "type"}]``; None for tensor signatures."""
    sig = mlmodel.get("signature") or {}
    raw = sig.get("inputs")
    if not raw:
        return None
    try:
        inputs = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        return None
    if not isinstance(inputs, list) or not inputs:
        return None
    fields = []
    for col in inputs:
        if not isinstance(col, dict) or not col.get("name") or col.get("type") == "tensor":
            return None
        t = col.get("type")
        fields.append({"name": str(col["name"]), "type": _TYPES.get(t, "json") if isinstance(t, str) else "json"})
    return fields


def predict_fn(mlmodel: dict[str, Any]) -> str | None:
    """The method the pyfunc flavour serves (``predict_proba`` for probability models)."""
    flavor = (mlmodel.get("flavors") or {}).get("python_function") or {}
    fn = flavor.get("predict_fn")
    return str(fn) if fn else None

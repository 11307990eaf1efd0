"""Engine adapters, registered by type. A new engine is one module and one line here.

Built-in adapters load lazily (importing boto3 costs time even when no SageMaker binding
exists); third-party adapters register through the ``scrutiny.engines`` entry point group
or ``register()``.
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points

from scrutiny.engines.base import (
    INTERNAL_HEADER,
    BindingConfig,
    Deployment,
    Engine,
    ModelContext,
    NativeRequest,
    NativeResponse,
)
from scrutiny.engines.errors import EngineError
from scrutiny.errors import InvalidInput

_BUILTIN: dict[str, str] = {
    "custom": "scrutiny.engines.custom.engine:CustomEngine",
    "sagemaker": "scrutiny.engines.sagemaker.engine:SageMakerEngine",
    "azure_ml_studio": "scrutiny.engines.azure.studio:AzureStudioEngine",
    "azure_ml_service": "scrutiny.engines.azure.service:AzureServiceEngine",
    "mlflow": "scrutiny.engines.mlflow.engine:MlflowEngine",
    "kserve": "scrutiny.engines.kserve.engine:KServeEngine",
}
# OpenScale service_type names accepted as aliases (contract §1.2).
_ALIASES: dict[str, str] = {
    "custom_machine_learning": "custom",
    "amazon_sagemaker": "sagemaker",
    "azure_machine_learning": "azure_ml_studio",
    "azure_machine_learning_studio": "azure_ml_studio",
    "azure_machine_learning_service": "azure_ml_service",
}
_registered: dict[str, type[Engine]] = {}


def register(cls: type[Engine]) -> type[Engine]:
    """Register an adapter class under its ``engine_type`` (usable as a decorator)."""
    _registered[cls.engine_type] = cls
    for alias in cls.aliases:
        _ALIASES.setdefault(alias, cls.engine_type)
    return cls


def canonical_type(engine_type: str) -> str:
    return _ALIASES.get(engine_type, engine_type)


def engine_types() -> list[str]:
    return sorted({*_BUILTIN, *_registered, *(ep.name for ep in entry_points(group="scrutiny.engines"))})


def engine_class(engine_type: str) -> type[Engine]:
    name = canonical_type(engine_type)
    if name in _registered:
        return _registered[name]
    target = _BUILTIN.get(name)
    if target is None:
        for ep in entry_points(group="scrutiny.engines"):
            if ep.name == name:
                return register(ep.load())
        raise InvalidInput(
            f"unknown engine_type {engine_type!r}; one of {', '.join(engine_types())}", field="engine_type"
        )
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise InvalidInput(
            f"engine_type {name!r} needs an optional dependency: {exc.name} (pip install 'scrutiny[{name}]')",
            field="engine_type",
        ) from None
    return register(cls)


class EnginePool:
    """One live adapter per binding (they hold connection pools and tokens)."""

    def __init__(self) -> None:
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def get(self, config: BindingConfig) -> Engine:
        with self._lock:
            engine = self._engines.get(config.id)
            if engine is None:
                engine = engine_class(config.engine_type)(config)
                self._engines[config.id] = engine
            return engine

    def drop(self, binding_id: str) -> None:
        with self._lock:
            engine = self._engines.pop(binding_id, None)
        if engine is not None:
            engine.close()

    def close(self) -> None:
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for e in engines:
            e.close()


__all__ = [
    "INTERNAL_HEADER",
    "BindingConfig",
    "Deployment",
    "Engine",
    "EngineError",
    "EnginePool",
    "ModelContext",
    "NativeRequest",
    "NativeResponse",
    "canonical_type",
    "engine_class",
    "engine_types",
    "register",
]

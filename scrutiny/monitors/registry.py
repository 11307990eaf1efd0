"""Monitors by name. Built-in monitors are imported on first use; others call ``register``."""

from __future__ import annotations

import importlib
import logging

from scrutiny.errors import NotFound
from scrutiny.monitors.base import Monitor

log = logging.getLogger("scrutiny.monitors")

# name -> "module:Class"; a module that is not installed leaves its monitor unavailable.
_BUILTIN: dict[str, str] = {
    "quality": "scrutiny.monitors.builtin.quality.monitor:QualityMonitor",
    "fairness": "scrutiny.monitors.builtin.fairness:FairnessMonitor",
    "drift": "scrutiny.monitors.builtin.drift:DriftMonitor",
    "performance": "scrutiny.monitors.builtin.performance.monitor:PerformanceMonitor",
}
_monitors: dict[str, Monitor] = {}
_missing: set[str] = set()


def register(monitor: Monitor) -> Monitor:
    """Make ``monitor`` available by ``monitor.name`` (replaces one of the same name)."""
    _monitors[monitor.name] = monitor
    _missing.discard(monitor.name)
    return monitor


def find(name: str) -> Monitor | None:
    if name in _monitors:
        return _monitors[name]
    target = _BUILTIN.get(name)
    if target is None or name in _missing:
        return None
    module, _, cls = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        _missing.add(name)
        return None
    return register(getattr(mod, cls)())


def get(name: str) -> Monitor:
    mon = find(name)
    if mon is None:
        raise NotFound(f"unknown monitor {name!r}; available: {', '.join(names())}", field="monitor")
    return mon


def names() -> list[str]:
    """Every available monitor, built-in ones first."""
    out = [n for n in _BUILTIN if find(n) is not None]
    return out + sorted(n for n in _monitors if n not in out)


def known_names() -> list[str]:
    """Built-in and registered names, without importing anything."""
    return list(dict.fromkeys([*_BUILTIN, *_monitors]))


def all_monitors() -> list[Monitor]:
    return [get(n) for n in names()]


def unregister(name: str) -> None:
    """Forget a monitor registered with ``register`` (tests, plugins being reloaded)."""
    _monitors.pop(name, None)

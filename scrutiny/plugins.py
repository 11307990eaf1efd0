"""One plugin loader for every kind of plugin (engines, monitors), in the manner of SQLAlchemy's.

A plugin is found by name in this order: registered at run time (``register``), built in
(``"module:attribute"``, imported on first use so an optional dependency costs nothing until
a plugin needs it), or an installed package's entry point in the loader's group. Aliases are
declared beside the built-in target, so they resolve before anything is imported.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Builtin:
    """A built-in plugin: where it lives, and the other names it answers to."""

    target: str  # "package.module:Attribute"
    aliases: tuple[str, ...] = ()


class PluginMissing(LookupError):
    """No plugin of that name (``known`` lists the names that exist)."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = known


class PluginUnavailable(ImportError):
    """The plugin exists but an optional dependency it imports is not installed."""

    def __init__(self, name: str, missing: str | None) -> None:
        super().__init__(f"{name} needs {missing}", name=missing)
        self.plugin = name
        self.missing = missing


@dataclass
class PluginLoader(Generic[T]):
    """Plugins of one kind. ``make`` turns the loaded attribute into the plugin (default: itself)."""

    group: str  # entry point group, e.g. "scrutiny.engines"
    builtin: dict[str, Builtin]
    make: Callable[[object], T] = field(default=lambda obj: obj)  # type: ignore[assignment,return-value]
    _loaded: dict[str, T] = field(default_factory=dict, init=False)
    _aliases: dict[str, str] = field(default_factory=dict, init=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False)

    def __post_init__(self) -> None:
        for name, b in self.builtin.items():
            for alias in b.aliases:
                self._aliases[alias] = name

    def canonical(self, name: str) -> str:
        """The plugin's own name for ``name`` (an alias or the name itself), without importing anything."""
        return self._aliases.get(name, name)

    def register(self, name: str, plugin: T, aliases: Iterable[str] = ()) -> T:
        with self._lock:
            self._loaded[name] = plugin
            for alias in aliases:
                self._aliases.setdefault(alias, name)
        return plugin

    def unregister(self, name: str) -> None:
        with self._lock:
            self._loaded.pop(name, None)

    def names(self) -> list[str]:
        """Every known name (built-in first), without importing any plugin."""
        eps = [ep.name for ep in entry_points(group=self.group)]
        return list(dict.fromkeys([*self.builtin, *sorted(self._loaded), *sorted(eps)]))

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def load(self, name: str) -> T:
        """The plugin called ``name`` (or one of its aliases); imported on first use.

        Raises ``PluginMissing`` for an unknown name and ``PluginUnavailable`` when the plugin's
        module needs a package that is not installed."""
        key = self.canonical(name)
        with self._lock:
            if key in self._loaded:
                return self._loaded[key]
            b = self.builtin.get(key)
            if b is not None:
                module, _, attr = b.target.partition(":")
                try:
                    obj = getattr(importlib.import_module(module), attr)
                except ImportError as exc:
                    if exc.name and not exc.name.startswith("scrutiny"):
                        raise PluginUnavailable(key, exc.name) from exc
                    raise  # our own module is broken: a bug, not a missing extra
                return self.register(key, self.make(obj))
            for ep in entry_points(group=self.group):
                if ep.name == key:
                    try:
                        obj = ep.load()
                    except ImportError as exc:
                        raise PluginUnavailable(key, exc.name) from exc
                    return self.register(key, self.make(obj))
        raise PluginMissing(name, self.names())


__all__ = ["Builtin", "PluginLoader", "PluginMissing", "PluginUnavailable"]

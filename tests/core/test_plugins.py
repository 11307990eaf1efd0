"""The plugin loader: aliases resolve before import, built-ins import on first use, missing extras are named."""

from __future__ import annotations

import sys

import pytest

from scrutiny.plugins import Builtin, PluginLoader, PluginMissing, PluginUnavailable


def test_aliases_resolve_without_importing_the_plugin() -> None:
    sys.modules.pop("json.tool", None)
    loader: PluginLoader[object] = PluginLoader(
        "scrutiny.tests-none", {"tool": Builtin("json.tool:main", ("t", "json_tool"))}
    )
    assert loader.canonical("json_tool") == "tool"
    assert "json.tool" not in sys.modules
    assert loader.names() == ["tool"]
    assert loader.load("t") is sys.modules["json.tool"].main


def test_unknown_names_and_missing_extras_are_told_apart() -> None:
    loader: PluginLoader[object] = PluginLoader(
        "scrutiny.tests-none", {"gone": Builtin("surely_not_installed_pkg.mod:X")}
    )
    with pytest.raises(PluginUnavailable) as missing:
        loader.load("gone")
    assert missing.value.missing == "surely_not_installed_pkg"
    with pytest.raises(PluginMissing) as unknown:
        loader.load("nope")
    assert unknown.value.known == ["gone"]


def test_registered_plugins_win_and_can_be_made() -> None:
    loader: PluginLoader[str] = PluginLoader(
        "scrutiny.tests-none", {"a": Builtin("json:dumps")}, make=lambda f: f.__name__
    )
    assert loader.load("a") == "dumps"
    loader.register("a", "mine", aliases=["b"])
    assert loader.load("b") == "mine"
    loader.unregister("a")
    assert loader.load("a") == "dumps"

"""Scrutiny: monitor models served anywhere (payload logging, fairness, quality, drift, explanations)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from scrutiny.sdk import Client, PayloadRecord

__all__ = ["Client", "PayloadRecord", "__version__"]


def __getattr__(name: str) -> Any:
    # The SDK is imported on first use, so `import scrutiny` stays cheap for the server and CLI.
    if name in ("Client", "PayloadRecord"):
        from scrutiny import sdk

        return getattr(sdk, name)
    raise AttributeError(name)

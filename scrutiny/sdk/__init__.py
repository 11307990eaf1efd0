"""The Python SDK: ``scrutiny.Client``, ``scrutiny.PayloadRecord``."""

from scrutiny.sdk.client import Binding, Client, ScrutinyAPIError, Subscription
from scrutiny.sdk.records import PayloadRecord

__all__ = ["Binding", "Client", "PayloadRecord", "ScrutinyAPIError", "Subscription"]

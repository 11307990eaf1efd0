"""The application: one object that the API, the CLI, the demo and the tests drive.

It owns the store, the credential box and the live engine adapters; each area of work is a
small service object on it (``bindings``, ``subscriptions``, ``payloads``, ``keys``).
"""

from __future__ import annotations

import logging

from scrutiny.config import Settings
from scrutiny.engines import EnginePool
from scrutiny.ingest.writer import GroupWriter
from scrutiny.security import CredentialBox
from scrutiny.store import Store

log = logging.getLogger("scrutiny")

# OpenScale's SDKs use this data mart id when none is given (Cloud Pak for Data's default): an
# alias of the one data mart.
DEFAULT_DATA_MART_ID = "00000000-0000-0000-0000-000000000000"


class Service:
    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        from scrutiny.explain.service import ExplanationService
        from scrutiny.monitors.service import MonitorService
        from scrutiny.service.bindings import BindingService
        from scrutiny.service.feedback import FeedbackService
        from scrutiny.service.keys import KeyService
        from scrutiny.service.payloads import PayloadService
        from scrutiny.service.subscriptions import SubscriptionService

        self.settings = settings
        settings.ensure_data_dir()
        self.store = store or Store.open(settings.store_url, sqlite_synchronous=settings.sqlite_synchronous)
        self.box = CredentialBox.from_settings(settings.secret_key, settings.secret_key_file)
        self.engines = EnginePool()
        self.writer = GroupWriter(self.store)
        self.keys = KeyService(self)
        self.bindings = BindingService(self)
        self.subscriptions = SubscriptionService(self)
        self.payloads = PayloadService(self)
        self.feedback = FeedbackService(self)
        self.monitors = MonitorService(self)
        self.explanations = ExplanationService(self)

    @property
    def data_mart_id(self) -> str:
        return str(self.store.catalog.data_mart()["id"])

    def check_data_mart(self, data_mart_id: str | None) -> str:
        """The data mart's id for ``data_mart_id`` (its id, OpenScale's default id, or none given);
        404 for any other."""
        real = self.data_mart_id
        if data_mart_id in (None, "", DEFAULT_DATA_MART_ID, real):
            return real
        from scrutiny.errors import NotFound

        raise NotFound(
            f"data mart {data_mart_id!r} not found; this server's data mart is {real!r}", field="data_mart_id"
        )

    def close(self) -> None:
        self.monitors.close()
        self.explanations.close()
        self.writer.close()
        self.engines.close()
        self.store.close()


__all__ = ["DEFAULT_DATA_MART_ID", "Service"]

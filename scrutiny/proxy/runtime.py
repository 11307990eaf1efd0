"""Everything one proxy process runs: the spool, its background writer, the metrics, the proxy."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from scrutiny.proxy.deadletter import FILE_NAME, DeadLetters
from scrutiny.proxy.drain import Drainer
from scrutiny.proxy.forward import Proxy
from scrutiny.proxy.keys import KeyCheck
from scrutiny.proxy.metrics import ProxyMetrics
from scrutiny.proxy.sinks import StoreSink
from scrutiny.proxy.spool import Spool
from scrutiny.proxy.targets import Targets

if TYPE_CHECKING:
    from scrutiny.service import Service

log = logging.getLogger("scrutiny.proxy")


class ProxyRuntime:
    def __init__(
        self,
        service: Service,
        spool_dir: Path,
        *,
        max_bytes: int | None = None,
        segment_bytes: int = 16 << 20,
        batch_records: int = 2000,
        drain_timeout: float = 5.0,
    ) -> None:
        self.service = service
        self.metrics = ProxyMetrics()
        self.spool = Spool(
            spool_dir, max_bytes=max_bytes or service.settings.spool_max_bytes, segment_bytes=segment_bytes
        )
        self.dead_letters = DeadLetters(Path(spool_dir) / FILE_NAME)
        self.targets = Targets(service)
        self.keys = KeyCheck(service, ttl=10.0)
        self.drainer = Drainer(
            self.spool, StoreSink(service, self.targets), self.dead_letters, self.metrics, batch_records=batch_records
        )
        self.proxy = Proxy(self.spool, self.targets, self.keys, self.metrics)
        self.drain_timeout = drain_timeout
        self.started = False

    def start(self) -> ProxyRuntime:
        self.spool.open()
        self.metrics.watch_spool(self.spool)
        self.drainer.start()
        self.started = True
        return self

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        self.drainer.stop(self.drain_timeout)
        self.spool.close()
        if self.spool.depth:
            log.info("%d spooled records will be delivered by the next start", self.spool.depth)

    def health(self) -> dict[str, object]:
        d = self.drainer
        return {
            "status": "ok" if d.alive and d.outage_since is None else "degraded",
            "spool": {
                "records": self.spool.depth,
                "bytes": self.spool.bytes,
                "limit_bytes": self.spool.max_bytes,
                "near_full": self.spool.near_full,
                "dead_letters": self.dead_letters.count,
            },
            "store": "unavailable" if d.outage_since is not None else "ok",
        }

"""Everything one proxy process runs: the spool, its background writer, the metrics, the proxy.

Each process owns one spool directory (a lock file enforces it). ``scrutiny serve`` uses
``<spool>/api``; if another process holds it (two API processes on one data directory), it
takes ``<spool>/api-<pid>`` instead, and a later start adopts such leftover directories:
drains them and deletes them. Spool directories of other kinds that still hold records are
reported at start, never silently forgotten.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from scrutiny.proxy.forward import Proxy
from scrutiny.proxy.keys import KeyCheck
from scrutiny.proxy.metrics import ProxyMetrics, publish, unpublish
from scrutiny.proxy.targets import Targets
from scrutiny.spool.deadletter import FILE_NAME, DeadLetters
from scrutiny.spool.drain import Drainer
from scrutiny.spool.sinks import StoreSink
from scrutiny.spool.spool import SUFFIX, Spool, SpoolLocked

if TYPE_CHECKING:
    from scrutiny.service import Service

log = logging.getLogger("scrutiny.proxy")


def _has_records(d: Path) -> bool:
    return any(p.stat().st_size for p in d.glob("*" + SUFFIX))


def _in_use(d: Path) -> bool:
    """Whether a live process holds the spool's lock."""
    try:
        fd = os.open(d / "LOCK", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


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
        fallback: bool = False,
    ) -> None:
        self.service = service
        self.spool_dir = Path(spool_dir)
        self.fallback = fallback
        self.max_bytes = max_bytes or service.settings.spool_max_bytes
        self.segment_bytes = segment_bytes
        self.batch_records = batch_records
        self.metrics = ProxyMetrics()
        self.targets = Targets(service)
        self.sink = StoreSink(service, self.targets)
        self.keys = KeyCheck(service, ttl=10.0)
        self.drain_timeout = drain_timeout
        self.started = False
        self._build(self.spool_dir)

    def _build(self, spool_dir: Path) -> None:
        self.spool = Spool(spool_dir, max_bytes=self.max_bytes, segment_bytes=self.segment_bytes)
        self.dead_letters = DeadLetters(spool_dir / FILE_NAME)
        self.drainer = Drainer(self.spool, self.sink, self.dead_letters, self.metrics, batch_records=self.batch_records)
        self.proxy = Proxy(self.spool, self.targets, self.keys, self.metrics)

    def start(self) -> ProxyRuntime:
        try:
            self.spool.open()
        except SpoolLocked:
            if not self.fallback:
                raise
            own = self.spool_dir.with_name(f"{self.spool_dir.name}-{os.getpid()}")
            log.warning("spool %s is in use by another process; this one spools to %s", self.spool_dir, own)
            self._build(own)
            self.spool.open()
        self.metrics.watch_spool(self.spool)
        publish(self.metrics)
        self.drainer.start()
        self.started = True
        threading.Thread(target=self._leftovers, name="spool-adopt", daemon=True).start()
        return self

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        unpublish(self.metrics)
        self.drainer.stop(self.drain_timeout)
        self.spool.close()
        if self.spool.depth:
            log.info("%d spooled records will be delivered by the next start", self.spool.depth)

    def _leftovers(self) -> None:
        """Drain the spools earlier processes of this kind left behind; report the others."""
        root, family = self.spool_dir.parent, self.spool_dir.name
        if not root.is_dir():
            return
        for d in sorted(root.iterdir()):
            if not d.is_dir() or d == self.spool.directory or not _has_records(d) or _in_use(d):
                continue
            if not (self.fallback and (d.name == family or d.name.startswith(family + "-"))):
                log.warning(
                    "spool %s holds records of another proxy process; start it again (or run "
                    "`scrutiny proxy --spool-dir %s`) to deliver them",
                    d,
                    d,
                )
                continue
            try:
                self._adopt(d)
            except SpoolLocked:
                continue  # its process is alive
            except Exception:
                log.exception("adopting spool %s failed; it stays for the next start", d)

    def _adopt(self, d: Path) -> None:
        spool = Spool(d, max_bytes=self.max_bytes).open()
        dead = DeadLetters(d / FILE_NAME)
        drainer = Drainer(spool, self.sink, DeadLetters(self.spool.directory / FILE_NAME), self.metrics)
        log.info("delivering %d records left in %s by an earlier process", spool.depth, d)
        drainer.start()
        while self.started and not drainer.wait_empty(5.0):
            pass
        drainer.stop(0)
        done = spool.depth == 0
        spool.close()
        if done and not dead.path.exists():
            shutil.rmtree(d, ignore_errors=True)

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

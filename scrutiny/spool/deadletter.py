"""Records that can never be stored, kept with the reason instead of blocking the spool.

A record lands here when storing it fails for a reason retrying cannot fix: the engine
answered something that does not fit the subscription, the subscription was deleted, the
spool bytes were damaged. One JSON object per line, fsynced before the spool lets the record
go, so nothing leaves the spool without a trace::

    {"time": "...Z", "reason": "...", "record": {"subscription_id", "scoring_id", "request", "response", ...}}
"""

from __future__ import annotations

import base64
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

FILE_NAME = "dead-letter.jsonl"


class DeadLetters:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._lock = threading.Lock()

    def add(self, entries: list[tuple[str, dict[str, Any]]]) -> None:
        """Append ``(reason, record description)`` pairs durably."""
        if not entries:
            return
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        lines = b"".join(
            orjson.dumps({"time": now, "reason": reason, "record": record}, default=str) + b"\n"
            for reason, record in entries
        )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                view = memoryview(lines)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            self.count += len(entries)

    @staticmethod
    def damaged(data: bytes, segment: int, offset: int) -> dict[str, Any]:
        return {"segment": segment, "offset": offset, "bytes_base64": base64.b64encode(data).decode()}

    def read(self) -> list[dict[str, Any]]:
        """Every entry (for tests and the ``scrutiny proxy`` tooling)."""
        if not self.path.exists():
            return []
        return [orjson.loads(line) for line in self.path.read_bytes().splitlines() if line.strip()]

"""The durable spool: append-only segment files, fsynced in groups, drained in order.

Acknowledged means stored: ``append()`` returns only once the record's bytes are on disk
(``fdatasync``). One writer thread does every write and fsync, so requests that arrive while
an fsync is in flight share the next one (group commit): the disk sees one fsync per batch of
requests, not one per request.

The background writer (``drain.Drainer``) reads records in order from a cursor, stores them,
and then ``commit()``s the cursor; a segment file is deleted only once every record in it is
committed. After a crash the undeleted segments are read again from the start: records that
were already stored are skipped by their ``scoring_id``, so replay never duplicates a row.

The spool is bounded (``max_bytes``). Near the bound it logs a warning; at the bound
``append()`` raises ``SpoolFull`` (HTTP 503) instead of dropping anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scrutiny.errors import ScrutinyError
from scrutiny.spool.framing import Damage, Frame, frame, scan

log = logging.getLogger("scrutiny.spool")

SUFFIX = ".seg"
READ_CHUNK = 4 * 1024 * 1024
ROTATE_DRAINED = 1 << 20  # a fully drained active segment this large is rotated out at once


class SpoolFull(ScrutinyError):
    code = "spool_full"
    status = 503


class SpoolUnavailable(ScrutinyError):
    """The spool could not write (disk full, I/O error) or is closed."""

    code = "spool_unavailable"
    status = 503


class SpoolLocked(ScrutinyError):
    code = "spool_locked"
    status = 409


@dataclass(frozen=True, order=True)
class Cursor:
    segment: int
    offset: int


@dataclass
class Item:
    """A record (or damaged bytes) read from the spool, with the segment it came from."""

    segment: int
    entry: Frame | Damage


class _ThreadWaiter:
    __slots__ = ("error", "event")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: BaseException | None = None


def _resolve_futures(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for f in futures:
        if not f.done():
            if error is None:
                f.set_result(None)
            else:
                f.set_exception(error)


def _name(seq: int) -> str:
    return f"{seq:016d}{SUFFIX}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """``async append(payload)`` / ``append_sync(payload)``; ``read`` / ``commit`` for the drainer."""

    def __init__(
        self,
        directory: Path | str,
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 16 << 20,
        rotate_seconds: float = 10.0,
        warn_fraction: float = 0.8,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = int(max_bytes)
        self.segment_bytes = int(segment_bytes)
        self.rotate_seconds = rotate_seconds
        self.warn_fraction = warn_fraction
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: list[tuple[bytes, Any]] = []
        self._pending_bytes = 0
        self._inflight_bytes = 0
        self._segments: dict[int, int] = {}  # seq -> durable size
        self._active = 0
        self._active_fd = -1
        self._active_since = 0.0
        self._lock_fd = -1
        self._thread: threading.Thread | None = None
        self._closing = False
        self._closed = True
        self._rotate_now = False
        self.data_event = threading.Event()  # set after each durable write (wakes the drainer)
        # counters (read by metrics)
        self.bytes = 0  # durable bytes in segment files
        self.depth = 0  # durable records not yet committed to the store
        self.appended = 0
        self.fsyncs = 0
        self.fsync_seconds = 0.0
        self.refused = 0
        self.torn = 0
        self._warned = False
        self._full_logged = False
        self.on_fsync: Callable[[float, int], None] | None = None  # (seconds, records) per group

    # -- life cycle ----------------------------------------------------------------------------
    def open(self) -> Spool:
        """Lock the directory, recover what a previous process left, start the writer thread."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.directory, 0o700)
        self._take_lock()
        try:
            self._recover()
            self._start_segment(max(self._segments, default=0) + 1)
        except BaseException:
            self._release_lock()
            raise
        self._closing = False
        self._closed = False
        self._thread = threading.Thread(
            target=self._write_loop, name=f"spool-writer:{self.directory.name}", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Write what is pending, stop the writer, release the directory."""
        with self._wake:
            if self._closed:
                return
            self._closing = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            self._closed = True
            if self._active_fd >= 0:
                os.close(self._active_fd)
                self._active_fd = -1
        self.data_event.set()
        self._release_lock()

    def __enter__(self) -> Spool:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _take_lock(self) -> None:
        path = self.directory / "LOCK"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise SpoolLocked(
                f"the spool {self.directory} is in use by pid {holder}: give each proxy process its own spool directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _recover(self) -> None:
        """Index the segments a previous process left; cut a torn record off the last one."""
        seqs = sorted(int(p.name[: -len(SUFFIX)]) for p in self.directory.glob("*" + SUFFIX) if p.name[:-4].isdigit())
        records = 0
        for i, seq in enumerate(seqs):
            path = self.directory / _name(seq)
            data = path.read_bytes()
            size = len(data)
            for entry in scan(data):
                if isinstance(entry, Frame):
                    records += 1
                elif entry.torn and i == len(seqs) - 1:
                    # A crash mid-write: that record was never acknowledged. Cut it off.
                    log.warning(
                        "spool %s: ignoring a torn record at the end of segment %s (%d bytes, never acknowledged)",
                        self.directory,
                        seq,
                        entry.end - entry.offset,
                    )
                    self.torn += 1
                    with open(path, "r+b") as f:
                        f.truncate(entry.offset)
                        f.flush()
                        os.fsync(f.fileno())
                    size = entry.offset
            self._segments[seq] = size
        self.bytes = sum(self._segments.values())
        self.depth = records
        if records:
            log.info("spool %s: %d records from a previous run will be replayed", self.directory, records)

    def _start_segment(self, seq: int) -> None:
        path = self.directory / _name(seq)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _fsync_dir(self.directory)
        with self._lock:
            old = self._active_fd
            self._active_fd = fd
            self._active = seq
            self._segments.setdefault(seq, os.fstat(fd).st_size)
            self._active_since = time.monotonic()
        if old >= 0:
            os.close(old)

    # -- writing ---------------------------------------------------------------------------------
    def room(self, n_bytes: int) -> bool:
        """Whether a record of ``n_bytes`` would fit now (checked before forwarding a request)."""
        return self.bytes + self._pending_bytes + self._inflight_bytes + n_bytes <= self.max_bytes

    def _submit(self, payload: bytes, waiter: Any) -> None:
        data = frame(payload)
        with self._wake:
            if self._closed or self._closing:
                raise SpoolUnavailable("the spool is closed")
            if self.bytes + self._pending_bytes + self._inflight_bytes + len(data) > self.max_bytes:
                self.refused += 1
                if not self._full_logged:
                    self._full_logged = True
                    log.error(
                        "spool %s is full (%d of %d bytes): refusing requests with 503 until the store accepts records",
                        self.directory,
                        self.bytes,
                        self.max_bytes,
                    )
                raise SpoolFull(
                    f"the payload spool is full ({self.max_bytes} bytes): the data mart has not accepted records; "
                    "nothing was logged",
                    retry_after=5,
                )
            self._pending.append((data, waiter))
            self._pending_bytes += len(data)
            if len(self._pending) == 1:
                self._wake.notify()

    async def append(self, payload: bytes) -> None:
        """Spool one record; returns once it is on disk. Raises ``SpoolFull`` / ``SpoolUnavailable``."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._submit(payload, (loop, fut))
        await fut

    def append_sync(self, payload: bytes, timeout: float = 60.0) -> None:
        """The blocking form, for threads (the embedded logger)."""
        waiter = _ThreadWaiter()
        self._submit(payload, waiter)
        if not waiter.event.wait(timeout):
            raise SpoolUnavailable(f"the spool did not write within {timeout} s")
        if waiter.error is not None:
            raise waiter.error

    def _write_loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closing and not self._rotate_now:
                    self._wake.wait(timeout=1.0)
                    if not self._pending:
                        break
                if not self._pending and self._closing:
                    return
                batch, self._pending = self._pending, []
                self._inflight_bytes, self._pending_bytes = self._pending_bytes, 0
            if batch:
                try:
                    self._write(batch)
                except Exception as exc:  # a bug must not leave requests waiting forever
                    log.exception("spool %s: the writer failed", self.directory)
                    self._wake_waiters(batch, SpoolUnavailable(f"the payload spool failed: {exc.__class__.__name__}"))
            self._maybe_rotate()

    def _write(self, batch: list[tuple[bytes, Any]]) -> None:
        data = b"".join(d for d, _ in batch)
        error: BaseException | None = None
        t0 = time.perf_counter()
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._active_fd, view)
                view = view[n:]
            os.fdatasync(self._active_fd)
        except OSError as exc:
            log.error("spool %s: write failed (%s); the %d requests get 503", self.directory, exc, len(batch))
            error = SpoolUnavailable(f"the payload spool could not write: {exc.strerror or exc}")
            with contextlib.suppress(OSError):  # drop the partial write: those records were not acknowledged
                os.ftruncate(self._active_fd, self._segments[self._active])
        elapsed = time.perf_counter() - t0
        with self._lock:
            self._inflight_bytes = 0
            if error is None:
                self._segments[self._active] += len(data)
                self.bytes += len(data)
                self.depth += len(batch)
                self.appended += len(batch)
                self.fsyncs += 1
                self.fsync_seconds += elapsed
        if error is None:
            self.data_event.set()
            self._check_bound()
            if self.on_fsync is not None:
                self.on_fsync(elapsed, len(batch))
        self._wake_waiters(batch, error)

    @staticmethod
    def _wake_waiters(batch: list[tuple[bytes, Any]], error: BaseException | None) -> None:
        """Wake every waiter of ``batch``: with ``error``, or with success when it is None."""
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for _, waiter in batch:
            if isinstance(waiter, _ThreadWaiter):
                waiter.error = error
                waiter.event.set()
            else:
                loop, fut = waiter
                by_loop.setdefault(loop, []).append(fut)
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
                loop.call_soon_threadsafe(_resolve_futures, futures, error)

    def _maybe_rotate(self) -> None:
        size = self._segments.get(self._active, 0)
        asked, self._rotate_now = self._rotate_now, False
        if size and (
            asked or size >= self.segment_bytes or time.monotonic() - self._active_since >= self.rotate_seconds
        ):
            try:
                self._start_segment(self._active + 1)
            except OSError as exc:
                log.error("spool %s: cannot start a new segment: %s", self.directory, exc)

    def _check_bound(self) -> None:
        used = self.bytes / self.max_bytes if self.max_bytes else 1.0
        if used >= self.warn_fraction and not self._warned:
            self._warned = True
            log.warning(
                "spool %s at %.0f%% of its %d-byte bound (%d records waiting for the store); "
                "at 100%% proxied requests are refused with 503",
                self.directory,
                used * 100,
                self.max_bytes,
                self.depth,
            )
        elif used < self.warn_fraction - 0.1 and self._warned:
            self._warned = False
            log.info("spool %s back to %.0f%% of its bound", self.directory, used * 100)
        if self._full_logged and used < self.warn_fraction:
            self._full_logged = False
            log.info("spool %s has room again: accepting requests", self.directory)

    @property
    def near_full(self) -> bool:
        return self._warned

    # -- reading (the drainer) -------------------------------------------------------------------
    def first_cursor(self) -> Cursor:
        with self._lock:
            return Cursor(min(self._segments, default=self._active), 0)

    def read(self, cursor: Cursor, max_records: int = 2000, max_bytes: int = 32 << 20) -> tuple[list[Item], Cursor]:
        """Durable records after ``cursor`` (up to ``max_records``, or about ``max_bytes``) and the
        cursor after them."""
        items: list[Item] = []
        while len(items) < max_records and sum(it.entry.end - it.entry.offset for it in items) < max_bytes:
            with self._lock:
                seqs = sorted(s for s in self._segments if s >= cursor.segment)
                active = self._active
                if not seqs:
                    return items, cursor
                if seqs[0] != cursor.segment:
                    cursor = Cursor(seqs[0], 0)
                limit = self._segments[cursor.segment]
            if cursor.offset >= limit:
                if cursor.segment == active or len(seqs) == 1:
                    return items, cursor
                cursor = Cursor(seqs[1], 0)
                continue
            cursor = self._read_segment(cursor, limit, max_records - len(items), items)
        return items, cursor

    def _read_segment(self, cursor: Cursor, limit: int, want: int, out: list[Item]) -> Cursor:
        path = self.directory / _name(cursor.segment)
        chunk = READ_CHUNK
        while True:
            size = min(limit - cursor.offset, chunk)
            with open(path, "rb") as f:
                f.seek(cursor.offset)
                data = f.read(size)
            reached_limit = cursor.offset + len(data) >= limit
            taken = 0
            pos = cursor.offset
            for entry in scan(data, base=cursor.offset):
                if isinstance(entry, Damage) and entry.torn and not reached_limit:
                    break  # the chunk ends inside a record: read on from here
                out.append(Item(cursor.segment, entry))
                pos = entry.end
                if isinstance(entry, Frame):
                    taken += 1
                    if taken >= want:
                        break
            if pos == cursor.offset and not reached_limit:
                chunk *= 4  # one record larger than the chunk
                continue
            return Cursor(cursor.segment, pos)

    def commit(self, cursor: Cursor, records: int) -> None:
        """Everything before ``cursor`` is stored (or dead-lettered): delete finished segments."""
        doomed = []
        with self._wake:
            self.depth = max(0, self.depth - records)
            active_size = self._segments.get(self._active, 0)
            if (
                cursor.segment == self._active
                and cursor.offset >= active_size > 0
                and (active_size >= ROTATE_DRAINED or self._warned)
            ):
                self._rotate_now = True  # a drained active segment: start a new one so this can go
                self._wake.notify()
            for seq in sorted(self._segments):
                finished = seq < cursor.segment or (seq == cursor.segment and cursor.offset >= self._segments[seq])
                if seq == self._active or not finished:
                    break
                doomed.append(seq)
                self.bytes -= self._segments.pop(seq)
        for seq in doomed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.directory / _name(seq))
        if doomed:
            self._check_bound()

    @property
    def segments(self) -> int:
        return len(self._segments)

"""The durable spool: framing, group fsync, replay, torn and damaged records, the bound."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from scrutiny.spool.framing import HEADER_SIZE, MAGIC, Damage, Frame, frame, scan
from scrutiny.spool.record import COMMON, SpoolRecord
from scrutiny.spool.spool import Cursor, Spool, SpoolFull, SpoolLocked


def payload(i: int, size: int = 100) -> bytes:
    return f"record-{i:06d}-".encode() + b"x" * size


def drain_all(spool: Spool, cursor: Cursor | None = None) -> tuple[list[bytes], list[Damage], Cursor]:
    cursor = cursor or spool.first_cursor()
    out: list[bytes] = []
    damage: list[Damage] = []
    while True:
        items, cursor = spool.read(cursor, 1000)
        if not items:
            return out, damage, cursor
        for it in items:
            if isinstance(it.entry, Frame):
                out.append(it.entry.payload)
            else:
                damage.append(it.entry)


def segment_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.seg"))


# -- framing -----------------------------------------------------------------------------------


def test_framing_round_trip_and_torn_tail() -> None:
    data = b"".join(frame(payload(i)) for i in range(5))
    assert [f.payload for f in scan(data) if isinstance(f, Frame)] == [payload(i) for i in range(5)]
    cut = data[: len(data) - 7]  # the last record half written
    entries = list(scan(cut))
    assert [e.payload for e in entries if isinstance(e, Frame)] == [payload(i) for i in range(4)]
    assert isinstance(entries[-1], Damage) and entries[-1].torn
    assert entries[-1].offset == len(b"".join(frame(payload(i)) for i in range(4)))


def test_framing_skips_damage_in_the_middle_without_losing_later_records() -> None:
    frames = [frame(payload(i)) for i in range(6)]
    data = bytearray(b"".join(frames))
    start = len(frames[0]) + len(frames[1])
    data[start + HEADER_SIZE + 5] ^= 0xFF  # a flipped bit inside record 2's payload
    entries = list(scan(bytes(data)))
    good = [e.payload for e in entries if isinstance(e, Frame)]
    assert good == [payload(i) for i in (0, 1, 3, 4, 5)]
    (bad,) = [e for e in entries if isinstance(e, Damage)]
    assert not bad.torn and bad.offset == start and bad.end == start + len(frames[2])


def test_framing_ignores_a_magic_inside_a_payload() -> None:
    tricky = b"abc" + MAGIC + b"\x05\x00\x00\x00zzzz" + b"def"
    data = frame(tricky) + frame(b"next")
    assert [e.payload for e in scan(data) if isinstance(e, Frame)] == [tricky, b"next"]


def test_record_round_trip() -> None:
    rec = SpoolRecord(
        subscription_id="s",
        scoring_id="id-1",
        request=b"a,b\n1,2\n",
        response=b'{"predictions":[1]}',
        request_type="text/csv",
        status=201,
        path="v2/x?y=1",
        transaction_id="tx",
        response_time_ms=1.5,
    )
    assert SpoolRecord.decode(rec.encode()) == rec
    common = SpoolRecord(subscription_id="s", scoring_id="i", request=b"{}", response=b"{}", form=COMMON)
    assert SpoolRecord.decode(common.encode()).form == COMMON
    with pytest.raises(ValueError):
        SpoolRecord.decode(b"\x01\x00\x00\x00garbage")


# -- the spool ---------------------------------------------------------------------------------


def test_group_fsync_many_concurrent_appends_share_few_fsyncs(tmp_path: Path) -> None:
    with Spool(tmp_path / "s") as spool:

        async def burst() -> None:
            await asyncio.gather(*(spool.append(payload(i)) for i in range(2000)))

        asyncio.run(burst())
        assert spool.appended == 2000
        assert spool.depth == 2000
        # 2000 requests in flight at once must not cost 2000 fsyncs: they are grouped.
        assert spool.fsyncs < 200, spool.fsyncs
        records, damage, _ = drain_all(spool)
        assert sorted(records) == sorted(payload(i) for i in range(2000))
        assert not damage


def test_sync_appends_from_threads_are_grouped_and_durable(tmp_path: Path) -> None:
    with Spool(tmp_path / "s") as spool:
        errors: list[BaseException] = []

        def worker(k: int) -> None:
            try:
                for i in range(50):
                    spool.append_sync(payload(k * 1000 + i))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert spool.appended == 800
        assert spool.fsyncs < 800
    # acknowledged means on disk: a fresh process finds every record
    with Spool(tmp_path / "s") as again:
        records, _, _ = drain_all(again)
        assert len(records) == 800 and again.depth == 800


def test_replay_after_restart_and_segments_deleted_only_after_commit(tmp_path: Path) -> None:
    d = tmp_path / "s"
    spool = Spool(d, segment_bytes=2000).open()
    for i in range(60):
        spool.append_sync(payload(i))
    assert len(segment_files(d)) > 3  # rotated by size
    records, _, cursor = drain_all(spool)
    assert records == [payload(i) for i in range(60)]
    # nothing committed yet: a restart replays everything, in order
    spool.close()
    spool = Spool(d, segment_bytes=2000).open()
    assert spool.depth == 60
    first = spool.first_cursor()
    items, after = spool.read(first, 25)
    assert [it.entry.payload for it in items] == [payload(i) for i in range(25)]  # type: ignore[union-attr]
    before = len(segment_files(d))
    spool.commit(after, 25)
    assert spool.depth == 35
    assert len(segment_files(d)) < before  # segments holding only committed records are gone
    spool.close()
    spool = Spool(d, segment_bytes=2000).open()
    records, _, cursor = drain_all(spool)
    # a segment is deleted only when all its records are committed, so some of the first 25
    # may come back (idempotency on scoring_id makes that safe); none of the rest is lost
    assert records[-35:] == [payload(i) for i in range(25, 60)]
    assert set(records) <= {payload(i) for i in range(60)}
    spool.commit(cursor, len(records))
    assert spool.depth == 0
    spool.close()


def test_torn_last_record_is_cut_off_and_others_survive(tmp_path: Path) -> None:
    d = tmp_path / "s"
    with Spool(d) as spool:
        for i in range(10):
            spool.append_sync(payload(i))
    (seg,) = [p for p in segment_files(d) if p.stat().st_size]
    size = seg.stat().st_size
    with open(seg, "ab") as f:  # a crash in the middle of writing record 10
        f.write(frame(payload(10))[:40])
    with Spool(d) as spool:
        assert spool.torn == 1
        assert seg.stat().st_size == size  # truncated back to the last whole record
        records, damage, _ = drain_all(spool)
        assert records == [payload(i) for i in range(10)]
        assert not damage
        spool.append_sync(payload(11))  # and new records go after it, readable
        records, _, _ = drain_all(spool)
        assert records[-1] == payload(11)


def test_damaged_record_in_the_middle_is_reported_not_hiding_the_rest(tmp_path: Path) -> None:
    d = tmp_path / "s"
    with Spool(d) as spool:
        for i in range(10):
            spool.append_sync(payload(i))
    (seg,) = [p for p in segment_files(d) if p.stat().st_size]
    data = bytearray(seg.read_bytes())
    one = len(frame(payload(0)))
    data[3 * one + HEADER_SIZE + 3] ^= 0x55
    seg.write_bytes(bytes(data))
    with Spool(d) as spool:
        records, damage, _ = drain_all(spool)
        assert records == [payload(i) for i in range(10) if i != 3]
        assert len(damage) == 1 and not damage[0].torn


def test_bound_reached_gives_a_clear_error_and_drops_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="scrutiny.spool")  # other tests raise the root level
    rec = len(frame(payload(0)))
    with Spool(tmp_path / "s", max_bytes=rec * 10 + 5) as spool:
        for i in range(10):
            spool.append_sync(payload(i))
        assert spool.near_full
        assert any("of its" in r.message and "bound" in r.message for r in caplog.records)
        assert not spool.room(rec)
        with pytest.raises(SpoolFull) as err:
            spool.append_sync(payload(10))
        assert err.value.status == 503 and "full" in err.value.message
        assert spool.refused == 1
        records, _, cursor = drain_all(spool)
        assert records == [payload(i) for i in range(10)]  # what was acknowledged is all there
        spool.commit(cursor, 10)  # the store caught up: the drained active segment is rotated out
        deadline = time.monotonic() + 5
        while spool.bytes and time.monotonic() < deadline:
            _, _, cursor = drain_all(spool, cursor)
            spool.commit(cursor, 0)
            time.sleep(0.01)
        assert spool.bytes == 0 and spool.room(rec) and not spool.near_full
        spool.append_sync(payload(12))
        records, _, _ = drain_all(spool, cursor)
        assert records == [payload(12)]


def test_one_process_per_spool_directory(tmp_path: Path) -> None:
    with Spool(tmp_path / "s"), pytest.raises(SpoolLocked, match=str(os.getpid())):
        Spool(tmp_path / "s").open()
    with Spool(tmp_path / "s"):  # released on close
        pass


def test_write_failure_fails_the_waiters_and_keeps_the_spool_consistent(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s").open()
    spool.append_sync(payload(0))
    os.close(spool._active_fd)  # the disk goes away under the writer
    spool._active_fd = os.open(os.devnull, os.O_RDONLY)
    from scrutiny.spool.spool import SpoolUnavailable

    with pytest.raises(SpoolUnavailable):
        spool.append_sync(payload(1))
    assert spool.appended == 1 and spool.depth == 1
    spool.close()

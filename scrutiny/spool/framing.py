"""Spool records on disk: ``magic | length | crc32 | payload``, so a torn or damaged record is detected.

A crash can leave the last record of a segment half written; bit rot can damage one in the
middle. Both are found by the length and the checksum; a damaged region is skipped by looking
for the next magic whose record checks out, so one bad record never hides the ones after it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

MAGIC = b"\xa7SPL"
HEADER = struct.Struct("<4sII")  # magic, payload length, crc32 of the payload
HEADER_SIZE = HEADER.size
MAX_RECORD = 256 * 1024 * 1024


def frame(payload: bytes) -> bytes:
    """The bytes appended to a segment for one record."""
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


@dataclass
class Frame:
    offset: int  # where the record starts in its segment
    end: int  # where the next one starts
    payload: bytes


@dataclass
class Damage:
    """Bytes that are not a valid record: a torn tail (``torn``) or a damaged region."""

    offset: int
    end: int
    data: bytes
    torn: bool


def _valid_at(data: bytes | memoryview, pos: int) -> int:
    """The end of a valid record at ``pos``, or -1."""
    if len(data) - pos < HEADER_SIZE:
        return -1
    magic, length, crc = HEADER.unpack_from(data, pos)
    if magic != MAGIC or length > MAX_RECORD:
        return -1
    end = pos + HEADER_SIZE + length
    if end > len(data) or zlib.crc32(data[pos + HEADER_SIZE : end]) != crc:
        return -1
    return end


def scan(data: bytes, base: int = 0) -> Iterator[Frame | Damage]:
    """Records in ``data`` (which starts at segment offset ``base``), and any damage between them.

    Damage that reaches the end of ``data`` with no valid record after it is a torn tail.
    """
    view = memoryview(data)
    pos = 0
    n = len(data)
    while pos < n:
        end = _valid_at(view, pos)
        if end >= 0:
            yield Frame(base + pos, base + end, bytes(view[pos + HEADER_SIZE : end]))
            pos = end
            continue
        nxt = pos + 1
        while True:
            nxt = data.find(MAGIC, nxt)
            if nxt < 0 or _valid_at(view, nxt) >= 0:
                break
            nxt += 1
        stop = n if nxt < 0 else nxt
        yield Damage(base + pos, base + stop, bytes(view[pos:stop]), torn=nxt < 0)
        pos = stop

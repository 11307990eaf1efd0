"""Session store: idle and absolute expiry, single-use links, tokens kept only as hashes."""

from __future__ import annotations

import hashlib

import pytest

from scrutiny.web import sessions as mod
from scrutiny.web.sessions import SessionStore


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(mod.time, "monotonic", c)
    return c


def test_idle_timeout_ends_a_session_and_use_keeps_it_alive(clock: Clock) -> None:
    store = SessionStore(idle=60, lifetime=3600)
    token = store.create("key-1")
    clock.t += 50
    assert store.get(token) == "key-1"  # used: the idle timer restarts
    clock.t += 50
    assert store.get(token) == "key-1"
    clock.t += 61
    assert store.get(token) is None
    assert store.get(token) is None  # and it stays gone


def test_lifetime_ends_even_a_busy_session(clock: Clock) -> None:
    store = SessionStore(idle=60, lifetime=300)
    token = store.create("key-1")
    for _ in range(5):
        clock.t += 59
        assert store.get(token) == "key-1"
    clock.t += 10
    assert store.get(token) is None


def test_tokens_are_stored_hashed(clock: Clock) -> None:
    store = SessionStore()
    token = store.create("key-1")
    assert token not in store._sessions
    assert hashlib.sha256(token.encode()).hexdigest() in store._sessions
    link = store.link_token("key-1")
    assert link not in store._links


def test_link_is_single_use_and_short_lived(clock: Clock) -> None:
    store = SessionStore(link_seconds=300)
    a, b = store.link_token("key-a"), store.link_token("key-b")
    assert store.redeem(a) == "key-a"
    assert store.redeem(a) is None
    clock.t += 301
    assert store.redeem(b) is None
    assert store.redeem("") is None and store.redeem(None) is None


def test_full_store_drops_the_longest_idle(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mod, "MAX_SESSIONS", 3)
    store = SessionStore()
    first = store.create("k1")
    clock.t += 1
    second, third = store.create("k2"), store.create("k3")
    clock.t += 1
    store.get(second), store.get(third)
    store.create("k4")
    assert store.get(first) is None
    assert store.get(second) == "k2" and len(store) == 3

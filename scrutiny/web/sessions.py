"""Dashboard sessions: a cookie token that stands for an API key, for a limited time.

Sessions live in the server's memory only (they end with the process): the cookie carries a
random token, the store keeps its SHA-256 hash, the API key it stands for and a CSRF token for
the session's forms. A session ends after ``idle`` without a request, or ``lifetime`` after
sign-in, whichever comes first; ``scrutiny.api.auth`` reads it through ``get`` (the same
cookie works for the REST API, so the dashboard's pages and its JavaScript share one login).

One-time login links (``scrutiny demo`` prints one) hold a second kind of token: used once,
valid for ``LINK_SECONDS``, exchanged for a session.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

COOKIE = "scrutiny_session"
IDLE_SECONDS = 8 * 3600
LIFETIME_SECONDS = 24 * 3600
LINK_SECONDS = 300
MAX_SESSIONS = 10_000


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Session:
    api_key: str
    csrf: str
    key_name: str
    role: str
    created: float
    seen: float


class SessionStore:
    """Token -> session, with expiry. ``get(token)`` returns the API key (what auth needs)."""

    def __init__(
        self, *, idle: float = IDLE_SECONDS, lifetime: float = LIFETIME_SECONDS, link_seconds: float = LINK_SECONDS
    ) -> None:
        self.idle = idle
        self.lifetime = lifetime
        self.link_seconds = link_seconds
        self._sessions: dict[str, Session] = {}
        self._links: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    # -- sessions ----------------------------------------------------------------------------
    def create(self, api_key: str, *, key_name: str = "", role: str = "") -> str:
        """A new session for ``api_key``; returns the cookie token (shown once, stored hashed)."""
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._prune(now)
            if len(self._sessions) >= MAX_SESSIONS:  # still full: drop the longest idle
                oldest = min(self._sessions, key=lambda k: self._sessions[k].seen)
                del self._sessions[oldest]
            self._sessions[_digest(token)] = Session(api_key, secrets.token_urlsafe(24), key_name, role, now, now)
        return token

    def session(self, token: str | None) -> Session | None:
        """The live session of ``token`` (refreshing its idle timer), or None."""
        if not token:
            return None
        h = _digest(token)
        now = time.monotonic()
        with self._lock:
            s = self._sessions.get(h)
            if s is None:
                return None
            if now - s.seen > self.idle or now - s.created > self.lifetime:
                del self._sessions[h]
                return None
            s.seen = now
            return s

    def get(self, token: str | None, default: str | None = None) -> str | None:
        """The API key behind a session cookie (``scrutiny.api.auth`` calls this)."""
        s = self.session(token)
        return s.api_key if s is not None else default

    def end(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(_digest(token), None)

    def __len__(self) -> int:
        with self._lock:
            self._prune(time.monotonic())
            return len(self._sessions)

    def _prune(self, now: float) -> None:
        for h in [h for h, s in self._sessions.items() if now - s.seen > self.idle or now - s.created > self.lifetime]:
            del self._sessions[h]
        for h in [h for h, (exp, _) in self._links.items() if exp < now]:
            del self._links[h]

    # -- one-time login links ----------------------------------------------------------------
    def link_token(self, api_key: str) -> str:
        """A single-use token that signs in as ``api_key`` within ``link_seconds``."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._prune(time.monotonic())
            self._links[_digest(token)] = (time.monotonic() + self.link_seconds, api_key)
        return token

    def redeem(self, token: str | None) -> str | None:
        """The API key of a valid link token, consuming it; None if unknown, used or expired."""
        if not token:
            return None
        with self._lock:
            entry = self._links.pop(_digest(token), None)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

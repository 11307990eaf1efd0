"""Settings, read from the environment (``SCRUTINY_*``) and overridden by command-line flags.

One object, built once at start-up and passed down: nothing else in the package reads the
environment, so tests can run several differently-configured instances side by side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


def _default_data_dir() -> Path:
    return Path(os.path.expanduser("~")) / ".scrutiny"


@dataclass(frozen=True)
class Settings:
    """Where Scrutiny keeps its data and how it listens."""

    data_dir: Path = field(default_factory=_default_data_dir)
    database_url: str | None = None  # default: SQLite inside data_dir
    api_key: str | None = None  # admin key to accept (and create) at start-up
    secret_key: str | None = None  # Fernet key for engine credentials; default: a key file in data_dir
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 64 * 1024 * 1024
    sqlite_synchronous: str = "FULL"  # acknowledged records survive power loss, not only a crash
    engine_connect_timeout: float = 5.0
    engine_read_timeout: float = 60.0
    engine_retries: int = 3
    proxy_port: int = 8090  # `scrutiny proxy`
    spool_max_bytes: int = 1 << 30  # the proxy's durable spool; at the bound requests get 503
    scheduler: bool = False  # run monitors on their schedules and deliver alerts (``scrutiny serve`` turns it on)
    tls_cert: Path | None = None  # ``scrutiny serve`` on https: a PEM certificate (chain) and its key
    tls_key: Path | None = None

    @classmethod
    def from_env(
        cls, env: dict[str, str] | None = None, *, defaults: dict[str, str] | None = None, **overrides: object
    ) -> Settings:
        """Settings from ``SCRUTINY_*`` variables; keyword overrides that are not None win;
        ``defaults`` are variables assumed when the environment does not set them."""
        e = os.environ if env is None else env
        if defaults:
            e = {**defaults, **e}
        values: dict[str, object] = {}
        if e.get("SCRUTINY_DATA_DIR"):
            values["data_dir"] = Path(e["SCRUTINY_DATA_DIR"]).expanduser()
        for name, key in [
            ("database_url", "SCRUTINY_DATABASE_URL"),
            ("api_key", "SCRUTINY_API_KEY"),
            ("secret_key", "SCRUTINY_SECRET_KEY"),
            ("host", "SCRUTINY_HOST"),
            ("sqlite_synchronous", "SCRUTINY_SQLITE_SYNCHRONOUS"),
        ]:
            if e.get(key):
                values[name] = e[key]
        for name, key, conv in [
            ("port", "SCRUTINY_PORT", int),
            ("max_body_bytes", "SCRUTINY_MAX_BODY_BYTES", int),
            ("engine_connect_timeout", "SCRUTINY_ENGINE_CONNECT_TIMEOUT", float),
            ("engine_read_timeout", "SCRUTINY_ENGINE_READ_TIMEOUT", float),
            ("engine_retries", "SCRUTINY_ENGINE_RETRIES", int),
            ("proxy_port", "SCRUTINY_PROXY_PORT", int),
            ("spool_max_bytes", "SCRUTINY_SPOOL_MAX_BYTES", int),
        ]:
            if e.get(key):
                values[name] = conv(e[key])
        for name, key in [("tls_cert", "SCRUTINY_TLS_CERT"), ("tls_key", "SCRUTINY_TLS_KEY")]:
            if e.get(key):
                values[name] = Path(e[key]).expanduser()
        if e.get("SCRUTINY_SCHEDULER"):
            values["scheduler"] = _flag(e["SCRUTINY_SCHEDULER"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        for name in ("data_dir", "tls_cert", "tls_key"):
            if isinstance(values.get(name), str):
                values[name] = Path(str(values[name])).expanduser()
        return cls(**values)  # type: ignore[arg-type]

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'scrutiny.db'}"

    @property
    def api_key_file(self) -> Path:
        """Where ``scrutiny serve`` writes the admin key (mode 0600) for the SDK and CLI to find."""
        return self.data_dir / "api_key"

    @property
    def secret_key_file(self) -> Path:
        return self.data_dir / "secret.key"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(self.data_dir, 0o700)
        except OSError:
            pass
        return self.data_dir


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (created 0600, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)

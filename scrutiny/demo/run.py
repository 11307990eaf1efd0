"""``scrutiny demo``: the whole product in one command, on the embedded store.

It starts the API and a demo custom ML engine serving a real credit-risk model, binds the
engine, discovers and subscribes its deployment with the training data, then plays an
application: it scores applicants on the engine and logs each request/response pair as
payload, until interrupted (or ``--duration`` seconds).

Later stages add themselves as ``DemoStage`` objects (monitors, feedback, drift, the dashboard).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console

from scrutiny._server import BackgroundServer, free_port
from scrutiny.config import Settings
from scrutiny.demo import credit
from scrutiny.demo.traffic import Applicants

console = Console(soft_wrap=True)


def _port(preferred: int, host: str) -> int:
    with socket.socket() as s:
        try:
            s.bind((host, preferred))
            return preferred
        except OSError:
            return free_port(host)


@dataclass
class DemoContext:
    settings: Settings
    api_url: str
    engine_url: str
    api_key: str
    client: Any  # scrutiny.Client
    service: Any  # scrutiny.service.Service
    engine_app: Any
    subscription: Any = None
    binding: Any = None
    applicants: Applicants = field(default_factory=Applicants)
    elapsed: float = 0.0
    rows_logged: int = 0
    requests_sent: int = 0
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoStage:
    """A part of the demo: ``setup`` once after subscribing, ``tick`` every traffic round."""

    name: str
    setup: Callable[[DemoContext], None] | None = None
    tick: Callable[[DemoContext], None] | None = None
    summary: Callable[[DemoContext], list[str]] | None = None


stages: list[DemoStage] = []


def _subscribe(ctx: DemoContext) -> None:
    client = ctx.client
    binding = client.bindings.create(
        name="Demo credit engine",
        engine_type="custom",
        credentials={"url": ctx.engine_url},
        description="scikit-learn models on the German credit data, served by `scrutiny engine demo`",
    )
    ctx.binding = binding
    deployments = {d["id"]: d for d in binding.deployments()}
    existing = [s for s in client.subscriptions.list(binding.id) if s.deployment_id == "credit-risk"]
    if existing:
        ctx.subscription = existing[0]
        return
    training = ctx.settings.data_dir / "demo" / "german_credit_training.csv"
    training.parent.mkdir(parents=True, exist_ok=True)
    credit.load_german().to_csv(training, index=False)
    ctx.subscription = client.subscriptions.create(
        binding_id=binding.id,
        deployment_id=deployments["credit-risk"]["id"],
        asset_properties={
            "problem_type": "binary",
            "label_column": credit.LABEL,
            "feature_fields": credit.FEATURES,
            "categorical_fields": credit.CATEGORICAL_FEATURES,
            "prediction_field": "prediction",
            "probability_fields": ["probability"],
        },
        training_data_path=str(training),
    )


def score_and_log(ctx: DemoContext, http: httpx.Client, n: int) -> None:
    """What an application does: call its engine, then log the pair through the SDK."""
    from scrutiny.sdk import PayloadRecord

    records = []
    url = f"{ctx.engine_url}/v1/deployments/credit-risk/online"
    for row in ctx.applicants.sample(n):
        t0 = time.perf_counter()
        r = http.post(url, json={"fields": credit.FEATURES, "values": [row]})
        r.raise_for_status()
        ms = int((time.perf_counter() - t0) * 1000)
        records.append(
            PayloadRecord(request={"fields": credit.FEATURES, "values": [row]}, response=r.json(), response_time=ms)
        )
    result = ctx.subscription.payload_logging.store(records)
    ctx.requests_sent += n
    ctx.rows_logged += result["stored"]


def run_demo(
    settings: Settings,
    *,
    duration: float | None = None,
    rate: float = 20.0,
    engine_port: int | None = None,
    stop_when: Callable[[DemoContext], bool] | None = None,
) -> DemoContext:
    """Run the demo until Ctrl+C, ``duration`` seconds, or ``stop_when(ctx)`` is true (checked
    after every round of traffic; tests wait for an outcome rather than for a fixed time)."""
    from scrutiny.api.app import create_app
    from scrutiny.demo.engine import create_engine_app
    from scrutiny.demo.monitoring import install as install_monitoring
    from scrutiny.sdk import Client

    install_monitoring()

    settings.ensure_data_dir()
    host = settings.host
    api_port = _port(settings.port, host)
    eport = engine_port or _port(settings.port + 1 if settings.port + 1 != api_port else api_port + 1, host)
    console.print("[bold]Scrutiny demo[/bold]: training the demo credit-risk models on German credit data…")
    engine_app = create_engine_app()
    app = create_app(settings.with_(port=api_port))
    service = app.state.service
    key = service.keys.ensure_admin_key() or settings.api_key or settings.api_key_file.read_text().strip()
    with (
        BackgroundServer(engine_app, host=host, port=eport) as engine,
        BackgroundServer(app, host=host, port=api_port) as api,
    ):
        client = Client(api.url, key)
        ctx = DemoContext(settings, api.url, engine.url, key, client, service, engine_app)
        _subscribe(ctx)
        for stage in stages:
            if stage.setup:
                stage.setup(ctx)
        sub = ctx.subscription
        from scrutiny.web import LINK_MINUTES, login_link

        console.print(f"  dashboard         {api.url}/")
        console.print(
            f"  sign in once      {login_link(app, api.url, key)}"
            f"  (one use, {LINK_MINUTES} minutes; then sign in with the admin key)"
        )
        console.print(f"  API and docs      {api.url}/docs")
        console.print(f"  demo engine       {engine.url}/v1/deployments")
        console.print(f"  store             {settings.store_url}")
        console.print(f"  admin API key     in {settings.api_key_file} (the SDK and CLI read it)")
        console.print(f"  subscription      {sub.id} (credit-risk, binary, German credit)")
        console.print(f"  payload rows      {api.url}/v1/subscriptions/{sub.id}/payloads")
        for stage in stages:
            if stage.summary:
                for line in stage.summary(ctx):
                    console.print(f"  {line}")
        console.print(
            "Sending scoring traffic and logging payloads"
            + (f" for {duration:g} s" if duration else "; Ctrl+C to stop")
        )
        start = time.monotonic()
        last_report = start
        stop = threading.Event()
        per_round = max(1, int(rate))
        try:
            with httpx.Client(timeout=30) as http:
                while not stop.is_set():
                    t0 = time.monotonic()
                    ctx.elapsed = t0 - start
                    if duration is not None and ctx.elapsed >= duration:
                        break
                    score_and_log(ctx, http, per_round)
                    for stage in stages:
                        if stage.tick:
                            stage.tick(ctx)
                    if stop_when is not None and stop_when(ctx):
                        break
                    if t0 - last_report >= 10:
                        console.print(
                            f"  {ctx.elapsed:5.0f} s: {ctx.requests_sent} requests scored, {ctx.rows_logged} payload rows stored"
                        )
                        last_report = t0
                    time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
        except KeyboardInterrupt:
            console.print("stopping…")
        total = ctx.subscription.payload_logging.count()
        console.print(
            f"Done: {ctx.requests_sent} requests scored, {ctx.rows_logged} payload rows stored this run, "
            f"{total} in the table."
        )
        client.close()
    return ctx

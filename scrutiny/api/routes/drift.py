"""What the drift monitor learned for a subscription: its archive (detector and constraints)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from scrutiny.api.auth import READ, WRITE, service_of
from scrutiny.api.models import ERRORS
from scrutiny.errors import NotFound

router = APIRouter(tags=["monitors"], responses=ERRORS)


class DriftArchiveOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    version: int = Field(description="increases each time the archive is learned again")
    created_at: str | None
    current: bool = Field(description="learned from the subscription's current training data, schema and model")
    summary: dict[str, Any] = Field(
        description="training rows, detector (base accuracy, cut-off, AUC), constraint counts"
    )
    constraints: list[dict[str, Any]] = Field(description="the learned consistency constraints, each with its rule")


def _view(service: Any, sub_id: str, archive: Any) -> DriftArchiveOut:
    from scrutiny.monitors.builtin.drift import archive as archive_mod
    from scrutiny.monitors.run.reader import iso

    sub = service.subscriptions.get(sub_id)
    wanted = archive.fingerprint in {archive_mod.fingerprint(sub, train_detector=t) for t in (True, False)}
    constraints = [
        {**c.to_dict(), "rule": c.describe()} for c in (archive.consistency.constraints if archive.consistency else [])
    ]
    return DriftArchiveOut(
        version=archive.version,
        created_at=iso(archive.created_at),
        current=wanted,
        summary=archive.summary,
        constraints=constraints,
    )


@router.get("/v1/subscriptions/{subscription_id}/monitors/drift/archive", dependencies=[READ])
def get_drift_archive(subscription_id: str, request: Request) -> DriftArchiveOut:
    """The newest archive: the accuracy drift detector's summary and every consistency constraint."""
    from scrutiny.monitors.builtin.drift import archive as archive_mod

    svc = service_of(request)
    svc.subscriptions.get(subscription_id)
    found = archive_mod.load(svc, subscription_id)
    if found is None:
        raise NotFound("drift has not learned anything for this subscription yet; configure the drift monitor")
    return _view(svc, subscription_id, found)


@router.post("/v1/subscriptions/{subscription_id}/monitors/drift/archive", status_code=201, dependencies=[WRITE])
async def relearn_drift_archive(subscription_id: str, request: Request) -> DriftArchiveOut:
    """Learn the archive again now (scores the training data through the engine once), e.g.
    after the model behind the deployment was replaced without a new asset revision."""
    from scrutiny.monitors import registry
    from scrutiny.monitors.builtin.drift import archive as archive_mod
    from scrutiny.monitors.builtin.drift.monitor import DriftMonitor

    svc = service_of(request)

    def learn() -> Any:
        sub = svc.subscriptions.get(subscription_id)
        mon = registry.get("drift")
        assert isinstance(mon, DriftMonitor)
        config = mon.parse_config(svc.monitors.get(subscription_id, "drift")["config"])
        return archive_mod.relearn(svc, sub, train_detector=mon.detector_wanted(sub, config))

    return _view(svc, subscription_id, await anyio.to_thread.run_sync(learn))

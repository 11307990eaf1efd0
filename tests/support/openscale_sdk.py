"""Running IBM's OpenScale SDKs against a live Scrutiny: the notebooks in the SDKs' virtualenvs
and their inputs (records scored by the real demo engine)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx

from scrutiny.demo import credit
from tests.servers.procs import venv_env

NOTEBOOKS = Path(__file__).resolve().parents[1] / "openscale_sdk"


def run_notebook(
    python: Path, notebook: str, cfg: dict[str, Any], tmp: Path, timeout: float = 600, **env_extra: str
) -> dict[str, Any]:
    """Run a notebook script in the SDK's venv; its output JSON, or a failure with its output.
    ``PIP_NO_INDEX=1``: the 2020 SDK runs ``pip install`` when an import fails; nothing is
    downloaded. ``env_extra``: e.g. ``REQUESTS_CA_BUNDLE`` to trust a self-signed certificate."""
    src, dst = tmp / f"{notebook}.in.json", tmp / f"{notebook}.out.json"
    src.write_text(json.dumps(cfg))
    env = venv_env(python, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **env_extra)
    env.pop("PYTHONPATH", None)  # the SDK runs as a user runs it, without Scrutiny's tree
    r = subprocess.run(
        [str(python), str(NOTEBOOKS / f"{notebook}.py"), str(src), str(dst)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp,
    )
    if r.returncode != 0:
        raise AssertionError(f"{notebook} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}")
    return dict(json.loads(dst.read_text()))


def notebook_input(
    german: Any, engine_url: str, n_payload: int = 12, rows: int = 10, n_feedback: int = 120
) -> dict[str, Any]:
    """Payload records scored by the demo engine (``n_payload`` records of ``rows`` rows), and
    labelled feedback rows (the features and ``Risk``)."""
    frame = german[credit.FEATURES]
    payload = []
    with httpx.Client(base_url=engine_url, timeout=30) as engine:
        for i in range(n_payload):
            values = frame.iloc[i * rows : (i + 1) * rows].values.tolist()
            request = {"fields": list(credit.FEATURES), "values": values}
            r = engine.post("/v1/deployments/credit-risk/online", json=request)
            r.raise_for_status()
            response = {k: v for k, v in r.json().items() if k in ("fields", "values")}
            payload.append({"request": request, "response": response, "response_time": 20 + i})
    fb = german.iloc[500 : 500 + n_feedback]
    return {
        "engine_url": engine_url,
        "features": list(credit.FEATURES),
        "categorical": list(credit.CATEGORICAL_FEATURES),
        "payload": payload,
        "feedback": {
            "fields": [*credit.FEATURES, credit.LABEL],
            "values": fb[[*credit.FEATURES, credit.LABEL]].values.tolist(),
        },
    }

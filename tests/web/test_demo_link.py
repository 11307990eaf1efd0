"""``scrutiny demo`` prints the dashboard's address and a one-time login link that works, once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from scrutiny._server import free_port


def test_demo_prints_a_working_one_time_login_link(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRUTINY_")}
    env.update(SCRUTINY_DATA_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "scrutiny", "demo", "--duration", "60", "--rate", "5", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        link = dashboard = None
        deadline = time.monotonic() + 150
        while link is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.strip().startswith("dashboard"):
                dashboard = line.split()[-1]
            m = re.search(r"(http://\S+/login/once\?token=\S+)", line)
            if m:
                link = m.group(1)
        assert dashboard == f"http://127.0.0.1:{port}/", "".join(lines)
        assert link, "".join(lines)
        with httpx.Client(follow_redirects=False, timeout=30) as browser:
            r = browser.get(link)
            assert r.status_code == 303 and r.headers["location"] == "/"
            overview = browser.get(dashboard)
            assert overview.status_code == 200 and "credit-risk deployment" in overview.text
        with httpx.Client(follow_redirects=False, timeout=30) as other:
            assert other.get(link).status_code == 401  # used: never twice
    finally:
        proc.terminate()
        proc.wait(timeout=30)

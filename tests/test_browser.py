"""The Prefect UI that `shotflow serve` prints, opened in a real browser (Debian's Chromium, driven by
Playwright's Python package; never a browser Playwright downloads itself).

`shotflow serve` starts its own private Prefect server for a folder with one scheduled storyboard;
two runs of its deployment are triggered through the API, as the UI's "Run" button does, against
the fake fal server: one finishes, one has a shot refused by fal. The test opens the address serve
printed, sees the deployment, the finished run with its shot table, and the failed run with the
artifact naming its failed shot, and saves screenshots: to docs/ for the README with
`make screenshots` (SHOTFLOW_SCREENSHOTS=docs), else to the test's temporary folder, so that
`make test` leaves the checkout as it found it.

Skipped (with the reason shown by `-ra`) where Chromium or the playwright package is missing;
`.ci/run` installs Chromium.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from fakefal import product_env
from waiting import api, shotflow_serve, tail, wait_for

ROOT = Path(__file__).resolve().parents[1]
SHOTFLOW = str(Path(sys.executable).with_name("shotflow"))
CHROMIUM = os.environ.get("SHOTFLOW_TEST_CHROMIUM", "/usr/bin/chromium")
# as root, offline: no sandbox, no GPU, and none of Chromium's own calls home
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 45_000  # the UI renders in a few seconds here; a busy 2-core machine gets more

pytestmark = [
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK), reason=f"browser test skipped: no Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
    pytest.mark.timeout(600),
]

STORYBOARD = """\
version: 1
title: "Browser check: {{ topic }}"
schedule:
  interval: 3600
  timezone: Europe/Paris
vars:
  topic: the harbour at dawn
output:
  path: "out/browser-check.mp4"
  resolution: 360p
shots:
  - id: wide
    prompt: "A slow aerial push over {{ topic }}."
    model: kling
    duration: 5
  - id: detail
    prompt: "Close-up of ropes and gulls, {{ topic }}."
    model: kling
    duration: 5
"""


def draw_settled(page, timeout: float = 20) -> None:
    """The task graph is drawn on a canvas, after the page is ready: wait (bounded) until it holds
    more than a blank picture, for the screenshot's sake (a slow drawing is not a failure)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        canvas = page.locator("canvas").first
        if canvas.count() and len(canvas.screenshot()) > 8_000:
            return
        time.sleep(0.5)


def test_the_address_serve_prints_shows_deployments_runs_and_artifacts(tmp_path, fake_fal):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="browser test skipped: the playwright package is not installed (pip install -e '.[test]')"
    )
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "browser-check.yaml").write_text(STORYBOARD)
    env = product_env(tmp_path / "cache")
    env.pop("PREFECT_API_URL", None)
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_RUNNER_POLL_FREQUENCY="2", SHOTFLOW_FAL_POLL_INTERVAL="0.1")
    log_path = tmp_path / "serve.log"
    with shotflow_serve(pipelines, tmp_path, env, log_path) as base:
        # the UI learns its API from /ui-settings: the port serve printed, not Prefect's default 4200
        assert httpx.get(f"{base}/ui-settings", timeout=10).json()["api_url"] == f"{base}/api"
        base_api = f"{base}/api"

        def deployment():
            try:
                found = httpx.post(f"{base_api}/deployments/filter", json={}, timeout=10).json()
            except (httpx.HTTPError, ValueError):
                return None
            return next((d for d in found if d["name"] == "browser-check"), None)

        dep = wait_for("serve to register the deployment", deployment, 120, diagnostics=lambda: tail(log_path))

        def run(parameters: dict) -> dict:
            run_id = api("POST", f"{base_api}/deployments/{dep['id']}/create_flow_run", json={"parameters": parameters}).json()[
                "id"
            ]

            def finished():
                r = api("GET", f"{base_api}/flow_runs/{run_id}").json()
                return r if r["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

            return wait_for(f"flow run {run_id} to finish", finished, 180, diagnostics=lambda: tail(log_path))

        done = run({})
        assert done["state"]["type"] == "COMPLETED", f"{done['state']}\n{tail(log_path)}"
        assert (tmp_path / "out" / "browser-check.mp4").is_file()
        fake_fal.fault("job", outcome="refused", match="ropes", times=20)  # fal refuses every 'detail' from now on
        failed = run({"vars": {"topic": "the harbour at night"}})
        # a shot that fails fails the run: the UI shows it Failed (red), not Completed
        assert failed["state"]["type"] == "FAILED", f"{failed['state']}\n{tail(log_path)}"
        keys = {
            a["key"]: a
            for a in api(
                "POST", f"{base_api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [failed["id"]]}}}
            ).json()
        }
        failures = keys["browser-check-the-harbour-at-night-failures"]
        assert "**detail**" in failures["data"] and "**wide**" not in failures["data"], failures["data"]

        shots = Path(os.environ.get("SHOTFLOW_SCREENSHOTS") or tmp_path / "screenshots")
        shots = shots if shots.is_absolute() else ROOT / shots
        shots.mkdir(parents=True, exist_ok=True)
        with sync_api.sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="shotflow-chromium-") as profile:
            browser = pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 800},
            )
            page = None
            try:
                browser.route(
                    re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), lambda route: route.abort()
                )  # offline: the UI's telemetry
                browser.set_default_timeout(WAIT_MS)
                page = browser.new_page()
                expect = sync_api.expect
                expect.set_options(timeout=WAIT_MS)

                page.goto(base)  # exactly what serve printed
                page.get_by_role("link", name="Deployments", exact=True).first.click()
                expect(page.get_by_role("link", name="browser-check", exact=True)).to_be_visible()
                expect(page.get_by_text("Every 1 hour").first).to_be_visible()
                page.screenshot(path=shots / "ui-deployments.png")

                page.get_by_role("link", name="Runs", exact=True).first.click()
                page.locator(f"a[href*='{done['id']}']").first.click()
                expect(page.get_by_text(done["name"]).first).to_be_visible()
                expect(page.get_by_text("Completed").first).to_be_visible()
                expect(page.get_by_text(re.compile(r"\d+ Task runs")).first).to_be_visible()
                page.get_by_role("tab", name="Artifacts").click()
                expect(page.get_by_text("browser-check-the-harbour-at-dawn-summary").first).to_be_visible()
                draw_settled(page)
                page.screenshot(path=shots / "ui-run.png")

                page.get_by_text("browser-check-the-harbour-at-dawn-shots").first.click()
                expect(page.get_by_role("cell", name="kling-2.0-master").first).to_be_visible()
                expect(page.get_by_role("cell", name="done").first).to_be_visible()
                page.screenshot(path=shots / "ui-artifacts.png")

                page.get_by_role("link", name="Runs", exact=True).first.click()
                page.locator(f"a[href*='{failed['id']}']").first.click()
                expect(page.get_by_text("Failed").first).to_be_visible()
                page.get_by_role("tab", name="Artifacts").click()
                page.get_by_text("browser-check-the-harbour-at-night-failures").first.click()
                expect(page.get_by_text("1 of 2 shots of").first).to_be_visible()
                page.screenshot(path=shots / "ui-failed.png")
            except Exception:
                if page is not None:
                    page.screenshot(path=tmp_path / "failure.png")  # what the browser showed, for whoever debugs it
                raise
            finally:
                browser.close()
    for name in ("ui-deployments.png", "ui-run.png", "ui-artifacts.png", "ui-failed.png"):
        assert (shots / name).stat().st_size > 10_000, f"{shots / name} looks empty"

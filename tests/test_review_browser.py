"""A review gate answered in the Prefect UI, in a real browser (Debian's Chromium through Playwright,
as tests/test_browser.py drives it, with its settings).

`shotflow serve` serves a storyboard with `review: true`; a run of its deployment waits at the
review before paying (answered through the API here), generates two takes of each shot against
the fake fal server (each job's clip a colour of its own), and waits for the picks. The test opens
the run in the UI, sees a frame of every take rendered above the form (data URIs: nothing to
serve), picks a take in the form, saves a screenshot (docs/ui-review.png with `make screenshots`),
submits, and the run finishes with that take in the picks file. The gate's artifact shows the same
frames.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
from fakefal import product_env
from test_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS
from waiting import api, shotflow_serve, tail, wait_for

from shotflow.picks import load_picks

ROOT = Path(__file__).resolve().parents[1]
SHOTFLOW = str(Path(sys.executable).with_name("shotflow"))

pytestmark = [
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK), reason=f"browser test skipped: no Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
    pytest.mark.timeout(600),
]

STORYBOARD = """\
version: 1
title: "Harbour picks"
review: true
schedule:
  interval: 3600
  timezone: Europe/Paris
output:
  path: "out/harbour-picks.mp4"
  resolution: 360p
defaults: {takes: 2, resolution: 720p}
shots:
  - {id: boats, prompt: "Boats leave the harbour at dawn.", model: pika, duration: 5}
  - {id: gulls, prompt: "Gulls over the harbour wall.", model: pika, duration: 5}
"""


def test_the_picks_of_takes_are_made_in_the_prefect_ui_form_with_a_frame_of_every_take(tmp_path, fake_fal):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="browser test skipped: the playwright package is not installed (pip install -e '.[test]')"
    )
    fake_fal.distinct_clips = True
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    board = pipelines / "harbour-picks.yaml"
    board.write_text(STORYBOARD)
    env = product_env(tmp_path / "cache")
    env.pop("PREFECT_API_URL", None)
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_RUNNER_POLL_FREQUENCY="2", SHOTFLOW_FAL_POLL_INTERVAL="0.1")
    log_path = tmp_path / "serve.log"
    with shotflow_serve(pipelines, tmp_path, env, log_path) as base:
        base_api = f"{base}/api"

        def deployment():
            try:
                found = httpx.post(f"{base_api}/deployments/filter", json={}, timeout=10).json()
            except (httpx.HTTPError, ValueError):
                return None
            return next((d for d in found if d["name"] == "harbour-picks"), None)

        dep = wait_for("serve to register the deployment", deployment, 120, diagnostics=lambda: tail(log_path))
        run_id = api("POST", f"{base_api}/deployments/{dep['id']}/create_flow_run", json={"parameters": {}}).json()["id"]

        def waiting_at(prefix: str):
            run = api("GET", f"{base_api}/flow_runs/{run_id}").json()
            state = run["state"]
            assert state["type"] not in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"), f"{state}\n{tail(log_path)}"
            key = state["state_details"]["pause_key"] or ""
            return run if state["type"] == "PAUSED" and key.startswith(prefix) else None

        wait_for("the review before paying", lambda: waiting_at("approve-plan"), 180, diagnostics=lambda: tail(log_path))
        answer = api("POST", f"{base_api}/flow_runs/{run_id}/resume", json={"run_input": {"approve": True}}).json()
        assert answer["status"] == "ACCEPT", answer
        run = wait_for("the picks of takes", lambda: waiting_at("pick-level-1-"), 240, diagnostics=lambda: tail(log_path))
        assert run["state"]["name"] == "Suspended"  # a deployment's run: the process is freed while it waits

        shots = Path(os.environ.get("SHOTFLOW_SCREENSHOTS") or tmp_path / "screenshots")
        shots = shots if shots.is_absolute() else ROOT / shots
        shots.mkdir(parents=True, exist_ok=True)
        posted = ""
        with sync_api.sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="shotflow-chromium-") as profile:
            browser = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 1000}
            )
            page = None
            try:
                browser.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), lambda route: route.abort())
                browser.set_default_timeout(WAIT_MS)
                page = browser.new_page()
                expect = sync_api.expect
                expect.set_options(timeout=WAIT_MS)

                page.goto(f"{base}/runs/flow-run/{run_id}")
                page.get_by_role("button", name=re.compile("Resume")).first.click()
                dialog = page.get_by_role("dialog")
                frames = dialog.locator("article img")
                expect(frames).to_have_count(4)
                for i in range(4):  # every take's frame is decoded by the browser, not a broken image
                    assert frames.nth(i).evaluate("img => img.complete && img.naturalWidth") == 150  # two takes side by side
                # the text above the form is a box of its own, squeezed by the form: the frames fit in it
                text, table = dialog.locator("article").first.bounding_box(), dialog.locator("article table").bounding_box()
                assert text["height"] >= table["height"] > 100 and text["width"] >= table["width"], (text, table)
                field = dialog.locator(".schema-form-property").filter(has_text="The take of 'gulls'")
                # the select opens from the keyboard (a click on it does not, in headless Chromium)
                field.locator("button.p-select-button__control").focus()
                page.keyboard.press("ArrowDown")
                page.locator(".p-pop-over-content").get_by_role("option", name="2", exact=True).click()
                expect(field.locator(".p-select-button__value")).to_have_text("2")
                page.screenshot(path=shots / "ui-review.png")
                with page.expect_request(lambda r: r.url.endswith(f"/{run_id}/resume")) as sent:
                    dialog.get_by_role("button", name="Submit").click()
                posted = sent.value.post_data or ""

                # the gate's artifact shows the same frames
                artifacts = api(
                    "POST", f"{base_api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}
                ).json()
                takes = next(a for a in artifacts if a["key"] == "harbour-picks-review-takes-1")
                page.goto(f"{base}/artifacts/artifact/{takes['id']}")
                images = page.locator("article img")
                expect(images).to_have_count(4)
                assert images.first.evaluate("img => img.complete && img.naturalWidth") > 0
            except Exception:
                if page is not None:
                    page.screenshot(path=tmp_path / "failure.png")  # what the browser showed, for whoever debugs it
                raise
            finally:
                browser.close()

        def finished():
            state = api("GET", f"{base_api}/flow_runs/{run_id}").json()["state"]
            return state if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

        def history() -> str:
            states = api("GET", f"{base_api}/flow_run_states/?flow_run_id={run_id}").json()
            return "\n".join(f"{s['timestamp']} {s['name']}: {s['message'] or ''}" for s in states) + "\n" + tail(log_path)

        state = wait_for("the run to finish", finished, 360, diagnostics=history)
        assert state["type"] == "COMPLETED", f"{state}\n{tail(log_path)}"
    assert '"gulls":2' in posted.replace(" ", ""), posted
    picks = load_picks(pipelines / "harbour-picks.picks.yaml").picked
    assert {shot: pick.take for shot, pick in picks.items()} == {"boats": 1, "gulls": 2}
    assert (tmp_path / "out" / "harbour-picks.mp4").is_file()
    assert (shots / "ui-review.png").stat().st_size > 10_000

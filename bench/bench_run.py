"""Whole-run benchmark: `shotflow run` of the ten-model storyboard (720p, cuts) against the fake fal.

    .venv/bin/python bench/bench_run.py [--latency 21] [--skip-limit-check]
    .venv/bin/python bench/bench_run.py --private-only [--repeat 3] [--against DIR]

Every job on the fake server (tests/fakefal.py, real HTTPS on 127.0.0.1) takes its model's latency
from its first status poll (0.5 s queued, the rest running): with `--spread 0.5` (the default) the
ten models' latencies go from half of `--latency` up to `--latency` (the slowest shot's fal latency),
so clips land over time as they do on fal; `--spread 0` lands all ten at once (the worst case for
the assembly: ten normalisations on two cores after the last clip). Each measurement is a real `shotflow run ... --backend fal --concurrency 10 --json`
process with a fresh clip store (all ten shots allowed at once; SHOTFLOW_FAL_POLL_INTERVAL=0.25),
timed from its start to its exit. Measured in one run, on one machine, so only ratios are claimed:

1. private: no Prefect server running: `run` starts its own (the default), and generates the
   shots while it starts (the early start); then one shot's prompt changed and run again (the
   same cache: one clip paid for, nine from the store); measured again with SHOTFLOW_EARLY_START=0
   (Prefect first: the run waits for its server before the first submit, as before issue 10).
   `--repeat N` does the early-start runs N times and prints medians; `--against DIR` runs each of
   them also with shotflow imported from DIR (another checkout, e.g. `git worktree add /tmp/base
   HEAD~3`), alternating, and prints the ratios: a before/after in one run, on one machine.
2. reused: `shotflow server start` left a Prefect server running (recorded in PREFECT_HOME):
   the run connects to it and sends its shots while Prefect is imported, each holding a slot of
   that server's global `fal-requests` limit (created on it, 10), which bounds its submits.
3. up to date: the same storyboard again, unchanged (decided from the manifest, no Prefect),
   against the same re-run with the manifest's fingerprint removed (rendered again, every clip
   from the store: what an unchanged re-run cost before).
4. one changed shot: one prompt edited, re-run on the reused server.
5. (unless --skip-limit-check) the global limit set to 3 on the reused server: the fake server's
   most requests in flight at once must be 3.

The four figures of issue 10: wall / slowest latency (target ≤ 1.15), up-to-date wall (≤ 1.5 s),
last clip -> final file (from the manifest: that clip's normalisation + ≤ 1 s), and the one-shot
re-render's fixed cost: its wall less its shot's fal latency, that clip's normalisation and the
join (the manifest's last clip -> final file) (target ≤ 2 s).

Each run's private Prefect server is let go at its end (SIGTERM, not waited for): the next run
starts once its port is closed, so one run's server does not slow the next.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
import fakefal  # noqa: E402  (before anything imports fal_client)

SERVER = fakefal.ensure_server()

# the ten models (the storyboard tests/test_flow.py renders): its shots, under this bench's output
TEN_MODELS = ROOT / "tests" / "fixtures" / "ten-models.yaml"


# the ten endpoints, fastest first: with --spread S their latencies go from (1-S)·L up to L, as
# real models differ (the slowest, veo3 here, takes --latency)
ORDER = [
    "pixverse-v4-fast",
    "luma-ray-2-flash",
    "pixverse-v4.5",
    "seedance-1.0-pro",
    "wan-pro",
    "pika-2.2",
    "hailuo-02",
    "kling-2.0-master",
    "veo2",
    "veo3",
]


LATENCIES: dict[str, float] = {}  # endpoint -> its jobs' latency on the fake server, as staggered


def stagger(latency: float, spread: float) -> None:
    """Give each endpoint its own latency on the fake server (it has one for all jobs)."""
    from shotflow.catalog import find_model

    share = {find_model(alias).endpoint: 1 - spread + spread * i / (len(ORDER) - 1) for i, alias in enumerate(ORDER)}
    LATENCIES.clear()
    LATENCIES.update({endpoint: latency * part for endpoint, part in share.items()})
    fake = type(SERVER)
    original = fake.__dict__.get("_true_phase") or fake.phase
    fake._true_phase = original

    def phase(self, job):
        if job.cancelled or job.polls_left is not None or job.t0 is None:
            return original(self, job)
        total = latency * share.get(job.endpoint, 1.0)
        queued = min(self.queue_seconds, total / 2)
        elapsed = time.monotonic() - job.t0
        if elapsed < queued:
            return "IN_QUEUE", elapsed / queued
        if job.held or job.outcome == "stuck":
            return "IN_PROGRESS", 0.5
        if elapsed < total:
            return "IN_PROGRESS", (elapsed - queued) / (total - queued)
        return "COMPLETED", 1.0

    fake.phase = phase


def storyboard(folder: Path, tag: str) -> Path:
    path = folder / "ten.yaml"
    shots = TEN_MODELS.read_text().split("shots:\n", 1)[1].replace("prompt: ", f"prompt: {tag} ")
    path.write_text(
        f"version: 1\ntitle: Ten models\noutput:\n  resolution: 720p\n  fps: 24\n  transition: {{type: cut}}\nshots:\n{shots}"
    )
    return path


def overlay(tree: Path, under: Path) -> Path:
    """A folder (made in `under`) that, first on PYTHONPATH, makes `shotflow` (with its shell
    packages, which an installed shotflow maps from the repository root) come from the checkout `tree`."""
    top = Path(tempfile.mkdtemp(prefix="tree-", dir=under))
    package = top / "shotflow"
    package.mkdir()
    shell = ("flows", "tasks", "deployments")
    for entry in (tree / "shotflow").iterdir():
        if entry.name not in shell:
            (package / entry.name).symlink_to(entry.resolve())
    for name in shell:
        (package / name).symlink_to((tree / name).resolve())
    return top


def run(
    work: Path,
    cache: Path,
    *extra: str,
    api_url: str | None = None,
    env_extra: dict[str, str] | None = None,
    tree: Path | None = None,
) -> dict:
    env = fakefal.product_env(cache)
    env.update(SHOTFLOW_FAL_POLL_INTERVAL="0.25", DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false", **(env_extra or {}))
    env.pop("PREFECT_API_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    if tree is not None:  # shotflow from another checkout (--against)
        env["PYTHONPATH"] = str(tree)
    argv = [
        str(Path(sys.executable).with_name("shotflow")),
        "run",
        "ten.yaml",
        "--backend",
        "fal",
        "--concurrency",
        "10",
        "--out",
        "out/ten.mp4",
        "--json",
        *extra,
    ]
    start = time.perf_counter()
    t0 = time.monotonic()
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - start
    end = time.monotonic()
    if done.returncode:
        raise SystemExit(f"shotflow run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    report["wall"] = wall
    ready = re.search(r"Prefect ready at \S+ after (\d+) s", done.stderr)
    if ready:  # a private server: how long its start took (the early start submits meanwhile)
        report["prefect_ready"] = float(ready.group(1))
    jobs = [j for j in list(SERVER.jobs.values()) if j.submitted_at >= t0]
    if jobs:  # where the wall went: before the first submit, on fal, after the last clip was handed out
        report["before_first_submit"] = min(j.submitted_at for j in jobs) - t0
        report["after_last_result"] = end - max(j.delivered_at or end for j in jobs)
    if report.get("manifest") and not report.get("up_to_date"):
        report["manifest_data"] = json.loads(Path(report["manifest"]).read_text())
    private = re.search(r"a private server at http://127\.0\.0\.1:(\d+)", done.stderr)
    if private:
        port_closed(int(private.group(1)))
    return report


def port_closed(port: int, within: float = 20) -> None:
    """Wait (bounded) until nothing listens on the run's private server port: it was sent SIGTERM
    and left to stop, and a server still stopping would slow the next run."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.1)


def one_changed(folder: Path, cache: Path, tag: str, **kwargs) -> dict:
    """The run again after one shot's prompt was edited (shot 'kling', prompt a): it pays for that
    clip only; `shot_latency` is that shot's on the fake server."""
    from shotflow.catalog import find_model

    sb = folder / "ten.yaml"
    sb.write_text(sb.read_text().replace(f"prompt: {tag} a,", f"prompt: {tag} a again,", 1))
    report = run(folder, cache, **kwargs)
    report["shot_latency"] = LATENCIES[find_model("kling-2.0-master").endpoint]
    return report


def one_shot(report: dict) -> str:
    """The one changed shot's run: its fal latency, that clip's normalisation, the join, and the
    rest (the fixed cost: issue 10's target is at most 2 s)."""
    whole, part = report.get("last_clip_to_final_s") or 0.0, report.get("last_clip_normalise_s") or 0.0
    return (
        f"wall {report['wall']:.1f} s = {report['shot_latency']:.1f} s on fal + its normalisation {part:.2f} s + the join "
        f"{whole - part:.2f} s + fixed {fixed_cost(report):.2f} s ({report.get('before_first_submit', 0):.1f} s before the "
        f"submit, {report.get('after_last_result', 0):.1f} s after fal handed out the result)"
    )


def fixed_cost(report: dict) -> float:
    return report["wall"] - report["shot_latency"] - (report.get("last_clip_to_final_s") or 0.0)


def phases(report: dict) -> str:
    return (
        f"wall {report['wall']:.1f} s: {report.get('before_first_submit', 0):.1f} s before the first submit, "
        f"{report.get('after_last_result', 0):.1f} s after fal handed out the last result, "
        + (f"Prefect ready after {report['prefect_ready']:.0f} s " if "prefect_ready" in report else "")
        + f"(last clip verified -> final file {tail(report)})"
    )


def tail(report: dict) -> str:
    """Issue 10's figure and its parts: that clip's normalisation plus at most 1 s."""
    whole, part = report.get("last_clip_to_final_s"), report.get("last_clip_normalise_s")
    if part is None:
        return f"{whole} s"
    return f"{whole} s = its normalisation {part} s + {whole - part:.2f} s"


def middle(reports: list[dict], key: str) -> dict:
    """The run with the median `key` (the lower middle of an even count)."""
    return sorted(reports, key=lambda r: r[key])[(len(reports) - 1) // 2]


def compare(runs: dict[str, list[tuple[dict, dict]]], latency: float) -> None:
    """This checkout against --against's: the medians of each figure, and their ratios."""
    figures = {
        "ten shots: wall": lambda full, one: full["wall"],
        "ten shots: before the first submit": lambda full, one: full.get("before_first_submit", 0.0),
        "ten shots: after fal handed out the last result": lambda full, one: full.get("after_last_result", 0.0),
        "ten shots: last clip verified -> final file": lambda full, one: full.get("last_clip_to_final_s") or 0.0,
        "one changed shot: wall": lambda full, one: one["wall"],
        "one changed shot: fixed cost": lambda full, one: fixed_cost(one),
    }
    print()
    print(f"| {'median of ' + str(len(runs['this'])) + ' runs':<50} | {'this':>8} | {'against':>8} | {'ratio':>6} |")
    print(f"|{'-' * 52}|{'-' * 10}|{'-' * 10}|{'-' * 8}|")
    for label, figure in figures.items():
        this = statistics.median(figure(*pair) for pair in runs["this"])
        against = statistics.median(figure(*pair) for pair in runs["against"])
        print(f"| {label:<50} | {this:8.2f} | {against:8.2f} | {this / against if against else 0:5.2f}x |")
    this = statistics.median(full["wall"] for full, _ in runs["this"]) / latency
    against = statistics.median(full["wall"] for full, _ in runs["against"]) / latency
    print(f"ten shots, wall / slowest latency: this {this:.2f}x, against {against:.2f}x (target ≤ 1.15x)")


def set_limit(api_url: str, limit: int) -> None:
    code = (
        "import sys\n"
        "from prefect.client.orchestration import get_client\n"
        "from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate\n"
        "from shotflow.deployments.storyboards import ensure_concurrency_limit\n"
        f"ensure_concurrency_limit('fal-requests', {limit})\n"
        "with get_client(sync_client=True) as c:\n"
        f"    c.update_global_concurrency_limit('fal-requests', GlobalConcurrencyLimitUpdate(limit={limit}))\n"
    )
    env = {**os.environ, "PREFECT_API_URL": api_url}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--latency", type=float, default=21.0, help="seconds each fake fal job takes (the slowest shot's latency)"
    )
    parser.add_argument(
        "--spread", type=float, default=0.5, help="latencies from (1-S)·latency to latency across the ten models (0: all equal)"
    )
    parser.add_argument("--skip-limit-check", action="store_true")
    parser.add_argument(
        "--private-only", action="store_true", help="only the private-server runs (early start against Prefect first)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="early-start runs (and one-shot re-runs) N times: medians")
    parser.add_argument("--against", metavar="DIR", help="also time those runs with shotflow from the checkout DIR, alternating")
    args = parser.parse_args()
    latency = args.latency
    SERVER.reset(queue_seconds=0.5, run_seconds=max(0.1, latency - 0.5))
    stagger(latency, args.spread)
    for seconds in (5, 6, 8, 10):
        SERVER.clip(seconds)  # the fake's media, made before anything is timed

    base = Path(tempfile.mkdtemp(prefix="shotflow-bench-run-"))
    os.environ["PREFECT_HOME"] = str(base / "prefect-home")  # never the user's
    try:
        # 1. a private server per run (the first start of a fresh PREFECT_HOME migrates: done once, untimed)
        warm = base / "warm"
        warm.mkdir()
        storyboard(warm, "warmup")
        stagger(0.3, 0)
        run(warm, base / "cache-warm")
        stagger(latency, args.spread)
        trees = {"this": None, **({"against": overlay(Path(args.against), base)} if args.against else {})}
        runs: dict[str, list[tuple[dict, dict]]] = {name: [] for name in trees}
        for i in range(args.repeat):
            for name, tree in list(trees.items())[:: -1 if i % 2 else 1]:  # alternating which goes first
                folder, cache = base / f"private-{name}-{i}", base / f"cache-private-{name}-{i}"
                folder.mkdir()
                storyboard(folder, "private")
                SERVER.reset(queue_seconds=0.5, run_seconds=max(0.1, latency - 0.5))
                full = run(folder, cache, tree=tree)
                print(f"[{name} {i + 1}] private server, early start: {phases(full)}", flush=True)
                SERVER.reset(queue_seconds=0.5, run_seconds=max(0.1, latency - 0.5))
                one = one_changed(folder, cache, "private", tree=tree)
                print(f"[{name} {i + 1}] one changed shot: {one_shot(one)}", flush=True)
                runs[name].append((full, one))
        private = middle([full for full, _ in runs["this"]], "wall")
        private_one = middle([one for _, one in runs["this"]], "wall")
        SERVER.reset(queue_seconds=0.5, run_seconds=max(0.1, latency - 0.5))
        late_dir = base / "private-late"
        late_dir.mkdir()
        storyboard(late_dir, "late")
        late = run(late_dir, base / "cache-late", env_extra={"SHOTFLOW_EARLY_START": "0"})
        print(f"private server, Prefect first (SHOTFLOW_EARLY_START=0): {phases(late)}", flush=True)
        print()
        print(f"early start: {private['wall'] / latency:.2f}x the slowest shot (median of {args.repeat}); "
              f"Prefect first: {late['wall'] / latency:.2f}x ({late['wall'] / private['wall']:.2f}x slower)")  # fmt: skip
        print(f"one changed shot (private server, median of {args.repeat}): {one_shot(private_one)}; target: fixed ≤ 2 s")
        if args.against:
            compare(runs, latency)
        if args.private_only:
            return

        # 2. a server already running, reused
        shotflow = str(Path(sys.executable).with_name("shotflow"))
        subprocess.run(
            [shotflow, "server", "start"],
            env={**os.environ, "SHOTFLOW_CONCURRENCY": "10"},
            check=True,
            timeout=600,
            capture_output=True,
        )
        try:
            from shotflow.deployments import localserver

            api_url = localserver.find()
            assert api_url, "shotflow server start left no server"
            set_limit(api_url, 10)
            reused_dir = base / "reused"
            reused_dir.mkdir()
            storyboard(reused_dir, "reused")
            reused = run(reused_dir, base / "cache-reused")
            print(f"reused server:  {phases(reused)}", flush=True)

            # 3. unchanged: up to date, against a forced re-run from the store
            # before this issue an unchanged re-run rendered again from the store: that is the
            # baseline, measured by removing the fingerprint from the manifest
            manifest = Path(reused["manifest"])
            data = json.loads(manifest.read_text())
            fingerprint = data.pop("fingerprint")
            manifest.write_text(json.dumps(data, indent=2))
            before = run(reused_dir, base / "cache-reused")
            assert json.loads(manifest.read_text())["fingerprint"] == fingerprint, "the re-render wrote the same fingerprint"
            unchanged = min((run(reused_dir, base / "cache-reused") for _ in range(3)), key=lambda r: r["wall"])
            assert unchanged["up_to_date"], unchanged
            print(f"unchanged: re-render from the store {before['wall']:.1f} s, up to date {unchanged['wall']:.2f} s", flush=True)

            # 4. one changed shot
            one = one_changed(reused_dir, base / "cache-reused", "reused")
            print(f"one changed shot: {one_shot(one)}", flush=True)

            # 5. the global limit bounds submits
            in_flight = None
            if not args.skip_limit_check:
                set_limit(api_url, 3)
                SERVER.reset(queue_seconds=0.5, run_seconds=1.3)  # forgets the jobs so far (max_in_flight)
                stagger(1.8, 0)
                limited_dir = base / "limited"
                limited_dir.mkdir()
                storyboard(limited_dir, "limited")
                run(limited_dir, base / "cache-limited")
                in_flight = SERVER.max_in_flight
                print(f"global limit 3, --concurrency 10: at most {in_flight} requests in flight", flush=True)
        finally:
            subprocess.run([shotflow, "server", "stop"], check=False, timeout=120)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    rows = [
        ("ten shots, private server, early start: wall / slowest latency", private["wall"], latency, "≤ 1.15x"),
        ("ten shots, private server, Prefect first: wall / slowest latency", late["wall"], latency, "(before: 2.6x)"),
        ("ten shots, private server: Prefect-first wall / early-start wall", late["wall"], private["wall"], ""),
        ("ten shots, reused server: wall / slowest latency", reused["wall"], latency, "≤ 1.15x"),
        ("ten shots: private wall / reused wall", private["wall"], reused["wall"], ""),
        ("unchanged re-run: re-render from the store / up to date", before["wall"], unchanged["wall"], "up to date ≤ 1.5 s"),
        (
            "one changed shot, reused server: fixed cost / full run's wall beyond the slowest shot",
            fixed_cost(one),
            reused["wall"] - latency,
            "fixed ≤ 2 s",
        ),
        (
            "one changed shot, private server: fixed cost / full run's wall beyond the slowest shot",
            fixed_cost(private_one),
            private["wall"] - latency,
            "fixed ≤ 2 s",
        ),
    ]
    print()
    print(f"| {'comparison: A / B':<70} | {'A':>8} | {'B':>8} | {'A/B':>6} | target |")
    print(f"|{'-' * 72}|{'-' * 10}|{'-' * 10}|{'-' * 8}|--------|")
    for label, a, b, target in rows:
        print(f"| {label:<70} | {a:8.2f} | {b:8.2f} | {a / b:5.2f}x | {target} |")
    print()
    print(f"up to date: {unchanged['wall']:.2f} s (target ≤ 1.5 s)")
    print(
        f"last clip -> final file: private {tail(private)} (Prefect first {tail(late)}), reused {tail(reused)}, "
        f"one changed shot {tail(one)} (before this issue: 7.1 s; target: + at most 1 s)"
    )
    print(f"one changed shot: reused server {one_shot(one)}; private server {one_shot(private_one)}")
    if in_flight is not None:
        print(f"global 'fal-requests' limit 3 with --concurrency 10: most requests in flight {in_flight}")


if __name__ == "__main__":
    main()

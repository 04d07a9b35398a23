"""Team benchmark: how many assemblies a worker finishes per minute, and what the shared store adds.

    .venv/bin/python bench/bench_team.py [--runs 6] [--skip-local]

One machine of tests/cluster.py's cluster (a real `prefect server`, a process work pool, one
`prefect worker` taking every run at once): `--runs` copies of a four-shot storyboard
(tests/fixtures/cluster/team-evening.yaml, each copy's prompts its own, so every run draws and
joins its own clips) rendered with the preview backend (ffmpeg's animatics, nothing paid), all
submitted at once. Measured twice in the same bench run, the worker's store being:

- its local cache (the deployment carries no store: one machine's setup), the baseline;
- the team's store: S3 (moto, in memory on loopback) with Redis leases, every clip put to the
  bucket before it counts as stored and the video, manifest and contact sheet published.

It prints, for each: the wall time from the submits to the last run's end, assemblies per
minute for the worker, and each run's median time from its start to its end on the server;
then the shared store's overhead as ratios to the local store (wall, and a run's median). Then,
in this process, the upload of one run's outputs (video, manifest, contact sheet) to the store
against a copy into a local folder (median of 5). moto's latency on loopback is not a real
bucket's: a real one adds its round trips and bandwidth.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from cluster import BOARDS, Cluster  # noqa: E402
from teamservers import s3_store  # noqa: E402

BOARD = BOARDS / "team-evening.yaml"


def storyboards(folder: Path, runs: int) -> list[Path]:
    """`runs` copies of the four-shot storyboard, each with prompts of its own."""
    text = BOARD.read_text()
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(runs):
        copy = folder / f"bench-{i:02d}.yaml"
        copy.write_text(re.sub(r"(prompt: .*)\.$", rf"\1 (take {i})", text, flags=re.M))
        made.append(copy)
    return made


def seconds(run: dict) -> float:
    start, end = (datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("start_time", "end_time"))
    return (end - start).total_seconds()


def measure(folder: Path, runs: int, shared: bool) -> dict:
    boards = storyboards(folder, runs)
    with Cluster(folder / "cluster", machines=("a",), worker_limit=runs, shared=shared) as cluster:
        deployment = cluster.deployments()["team-evening"]["id"]
        out = folder / "out"
        t0 = time.monotonic()
        ids = []
        for board in boards:
            params = {"storyboard": str(board), "backend": "preview", "out": str(out / f"{board.stem}.mp4")}
            ids.append(cluster.call("POST", f"/deployments/{deployment}/create_flow_run", json={"parameters": params})["id"])
        states = cluster.wait_finished(ids, timeout=1800)
        wall = time.monotonic() - t0
        bad = {i: s["type"] for i, s in states.items() if s["type"] != "COMPLETED"}
        if bad:
            sys.exit(f"runs did not complete: {bad}\n{cluster.diagnostics()}")
        per_run = [seconds(cluster.flow_run(i)) for i in ids]
        outputs = [out / f"{boards[0].stem}{suffix}" for suffix in (".mp4", ".manifest.json", ".contact.png")]
        kept = folder / "kept"
        kept.mkdir(exist_ok=True)
        for f in outputs:
            if f.exists():
                shutil.copy2(f, kept / f.name)
        upload = upload_ratio(cluster, [kept / f.name for f in outputs if (kept / f.name).exists()]) if shared else None
    return {"wall": wall, "per_minute": runs / wall * 60, "run_median": statistics.median(per_run), "upload": upload}


def upload_ratio(cluster, files: list[Path], repeat: int = 5) -> tuple[float, float]:
    """Median seconds to put one run's outputs in the S3 store, and to copy them into a local folder."""
    store = s3_store(cluster.s3, f"s3://shotflow-team/bench-{time.time_ns()}")
    local = Path(tempfile.mkdtemp(prefix="bench-team-local-"))
    remote_times, local_times = [], []
    try:
        for round_ in range(repeat):
            t = time.perf_counter()
            for f in files:
                store.put_file(f, f"outputs/{round_}/{f.name}")
            remote_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            for f in files:
                shutil.copyfile(f, local / f"{round_}-{f.name}")
            local_times.append(time.perf_counter() - t)
    finally:
        shutil.rmtree(local, ignore_errors=True)
    return statistics.median(remote_times), statistics.median(local_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6, help="storyboards submitted at once to the one worker")
    parser.add_argument("--skip-local", action="store_true", help="measure the shared store only")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-team-"))
    try:
        local = None if args.skip_local else measure(folder / "local", args.runs, shared=False)
        shared = measure(folder / "shared", args.runs, shared=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{args.runs} four-shot storyboards (preview, 20 s at 360p each) submitted at once to one process worker:")
    print(f"{'store':<28}{'wall':>9}{'assemblies/min':>16}{'a run (median)':>16}")
    for name, m in (("local cache (one machine)", local), ("S3 (moto) + Redis leases", shared)):
        if m:
            print(f"{name:<28}{m['wall']:>8.1f}s{m['per_minute']:>16.2f}{m['run_median']:>15.1f}s")
    if local:
        print(
            f"shared store / local: wall {shared['wall'] / local['wall']:.2f}x, "
            f"a run's median {shared['run_median'] / local['run_median']:.2f}x"
        )
    if shared["upload"]:
        remote, copy = shared["upload"]
        print(f"one run's outputs (video, manifest, contact sheet): put to S3 {remote * 1000:.0f} ms, ")
        print(f"  copied to a local folder {copy * 1000:.1f} ms: {remote / copy:.0f}x")


if __name__ == "__main__":
    main()

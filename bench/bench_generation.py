"""How much concurrent generation buys: N shots of equal latency against the fake fal queue.

Measured in one run, against one fake server (tests/fakefal.py, real HTTPS on 127.0.0.1, each job
~0.2 s queued + ~0.8 s running): a sequential loop of `fal_client.subscribe` (what a naive script
does: submit, poll, fetch; no download) versus `FalBackend.generate` (submit, journal, poll, fetch,
download, verify, store) in a ThreadPoolExecutor of 4 and of 8 workers. Each measurement uses
fresh prompts and a fresh cache, so nothing comes from the clip store.

    .venv/bin/python bench/bench_generation.py [--shots 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import fakefal  # noqa: E402  (before fal_client: it reads the queue host at import)

SERVER = fakefal.ensure_server()

import fal_client  # noqa: E402

from shotflow.generation.fal.backend import FalBackend  # noqa: E402
from shotflow.plan import plan_from_text  # noqa: E402
from shotflow.store.clips import ClipStore  # noqa: E402

POLL = 0.1  # the same polling interval for both, fal_client's default


def shots(tag: str, n: int):
    lines = "".join(f"  - {{id: s{i}, prompt: '{tag} shot {i}', model: kling, duration: 5}}\n" for i in range(n))
    return plan_from_text(f"version: 1\ntitle: bench\nshots:\n{lines}", "bench.yaml").shots


def sequential_subscribe(n: int, tag: str) -> float:
    client = fal_client.SyncClient(key=fakefal.KEY)
    batch = shots(tag, n)
    start = time.perf_counter()
    for shot in batch:
        result = client.subscribe(shot.endpoint, shot.body, interval=POLL)
        assert result["video"]["url"]
    return time.perf_counter() - start


def concurrent_generate(n: int, workers: int, tag: str) -> float:
    cache = Path(tempfile.mkdtemp(prefix="bench-generation-"))
    backend = FalBackend(ClipStore(cache), settings=fakefal.settings_for(cache, SHOTFLOW_FAL_POLL_INTERVAL=POLL))
    batch = shots(tag, n)
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        clips = list(pool.map(backend.generate, batch))
    elapsed = time.perf_counter() - start
    assert all(c.path.is_file() and not c.cache_hit for c in clips)
    backend.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per job on the fake server")
    args = parser.parse_args()

    SERVER.reset(queue_seconds=0.2 * args.latency, run_seconds=0.8 * args.latency)
    SERVER.clip(5)  # the fake's media, made once up front
    modes = {
        "sequential fal_client.subscribe": lambda r: sequential_subscribe(args.shots, f"seq{r}"),
        "FalBackend.generate, 4 threads": lambda r: concurrent_generate(args.shots, 4, f"c4-{r}"),
        "FalBackend.generate, 8 threads": lambda r: concurrent_generate(args.shots, 8, f"c8-{r}"),
    }
    times: dict[str, list[float]] = {name: [] for name in modes}
    for r in range(args.repeat):  # interleaved, so drift hits every mode alike
        for name, run in modes.items():
            times[name].append(run(r))

    billed = SERVER.billed
    assert billed and max(billed.values()) == 1, "a body was billed twice"
    baseline = statistics.median(times["sequential fal_client.subscribe"])
    print(f"{args.shots} shots, ~{args.latency:g} s each on the fake fal queue, median of {args.repeat}")
    print(f"{'mode':36} {'wall s':>8} {'shots/s':>8} {'speed-up':>9}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:36} {median:8.2f} {args.shots / median:8.2f} {baseline / median:8.2f}x")


if __name__ == "__main__":
    main()

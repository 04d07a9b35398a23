"""Shared-store benchmark: what landing a clip in an S3 store costs, as a ratio to the local clip store.

    .venv/bin/python bench/bench_store.py [--repeat 3] [--quick]

Makes the assembly bench's ten mixed clips (bench/bench_assembly.py: 720p, 1080p, portrait; 3-5 s),
starts moto's S3 server as shipped (`python -m moto.server`, on 127.0.0.1), and times, per clip,
interleaved over `--repeat` rounds with fresh keys each round (median):

- the local clip store as today: `ClipStore.put` of a verified download (hash, rename, fsync, meta);
- `LocalStore.put_file` (shotflow/store/shared.py): a copy into a store folder, fsync, meta;
- `S3Store.put_file` (shotflow/store/remote.py): stream up, then check size and sha256 by HEAD;
- the same with `read_back=True` (downloads it all again and hashes it);
- `S3Store.get_file` into an empty cache (download, hash, rename);
- a clip's lease taken and given back: `StoreLease` (conditional writes in S3) and, where
  `redis-server` is installed, `RedisLease`.

Every ratio divides by the local clip store's time in the same run on the same clips. moto keeps
objects in memory in a Python process on this machine: this measures shotflow's own overhead
(hashing, verifying, the HTTP round trips) on loopback, not a real bucket's latency or bandwidth,
which come on top and depend on where the workers run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests")]

from bench_assembly import make_sources, settings  # noqa: E402
from teamservers import CREDENTIALS, free_port, s3_store  # noqa: E402

from shotflow.store.clips import ClipStore  # noqa: E402
from shotflow.store.digest import file_sha256  # noqa: E402
from shotflow.store.lease import RedisLease, StoreLease  # noqa: E402
from shotflow.store.shared import LocalStore, parse_store  # noqa: E402


def start(args: list[str], ready, log: Path) -> subprocess.Popen:
    out = open(log, "wb")
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **CREDENTIALS})
    deadline = time.monotonic() + 60
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"{args[0]} did not start: see {log}")
        time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)


def answers(url: str) -> bool:
    import httpx

    try:
        httpx.get(url, timeout=1)
        return True
    except httpx.TransportError:
        return False


def per_clip(clips: list[Path], run) -> float:
    """Seconds per clip of `run(index, clip)` over all clips."""
    start = time.perf_counter()
    for i, clip in enumerate(clips):
        run(i, clip)
    return (time.perf_counter() - start) / len(clips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the assembly bench's quarter-size clips")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shotflow-bench-store-"))
    procs = []
    try:
        sources, _, _ = settings(args.quick)
        clips = make_sources(work, sources)
        total = sum(c.stat().st_size for c in clips)
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        moto = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        procs.append(start(moto, lambda: answers(endpoint + "/moto-api/"), work / "moto.log"))
        redis_url = None
        if shutil.which("redis-server"):
            rport = free_port()
            redis_url = f"redis://127.0.0.1:{rport}/0"
            rargs = ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            procs.append(start(rargs, lambda: _pong(redis_url), work / "redis.log"))

        s3 = s3_store(endpoint, "s3://shotflow-bench/store")
        hashes = [file_sha256(c) for c in clips]
        modes = {
            "local clip store (ClipStore.put)": None,
            "LocalStore.put_file": None,
            "S3Store.put_file (HEAD check)": None,
            "S3Store.put_file (read back)": None,
            "S3Store.get_file (empty cache)": None,
            "StoreLease take + give back": None,
        }
        if redis_url:
            modes["RedisLease take + give back"] = None
        times: dict[str, list[float]] = {name: [] for name in modes}
        for r in range(args.repeat):  # interleaved, so drift hits every mode alike
            tag = uuid.uuid4().hex[:8]
            local = ClipStore(work / f"cache-{tag}")
            folder = LocalStore(parse_store(str(work / f"store-{tag}"), default=work))
            staged = work / f"staged-{tag}"
            staged.mkdir()

            def clip_store_put(i: int, clip: Path) -> None:
                verified = staged / f"{i}.part"  # a verified download, as fal/download.py leaves it
                shutil.copyfile(clip, verified)
                start = time.perf_counter()
                local.put(f"{tag}{i}", verified)
                times_local.append(time.perf_counter() - start)

            times_local: list[float] = []
            per_clip(clips, clip_store_put)
            times["local clip store (ClipStore.put)"].append(sum(times_local) / len(clips))
            times["LocalStore.put_file"].append(
                per_clip(clips, lambda i, c: folder.put_file(c, f"{tag}/{i}.mp4", sha256=hashes[i]))
            )
            times["S3Store.put_file (HEAD check)"].append(
                per_clip(clips, lambda i, c: s3.put_file(c, f"{tag}/{i}.mp4", sha256=hashes[i]))
            )
            times["S3Store.put_file (read back)"].append(
                per_clip(clips, lambda i, c: s3.put_file(c, f"{tag}/rb{i}.mp4", sha256=hashes[i], read_back=True))
            )
            times["S3Store.get_file (empty cache)"].append(
                per_clip(clips, lambda i, c: s3.get_file(f"{tag}/{i}.mp4", work / f"get-{tag}"))
            )

            def take(lease) -> None:
                with lease:
                    lease.ensure()

            times["StoreLease take + give back"].append(per_clip(clips, lambda i, c: take(StoreLease(s3, f"{tag}{i}"))))
            if redis_url:
                times["RedisLease take + give back"].append(
                    per_clip(clips, lambda i, c: take(RedisLease(redis_url, s3.location.url, f"{tag}{i}")))
                )
            shutil.rmtree(staged)

        baseline = statistics.median(times["local clip store (ClipStore.put)"])
        print(
            f"{len(clips)} clips, {total / len(clips) / 1e6:.1f} MB each on average; moto {_version('moto')} on loopback "
            f"(in memory: shotflow's overhead, not a real bucket's); {os.cpu_count()} cores; median of {args.repeat}"
        )
        print(f"{'per clip':34} {'ms':>8} {'MB/s':>8} {'x local':>8}")
        for name, values in times.items():
            median = statistics.median(values)
            if "Lease" in name:  # no bytes moved: a cost per submit, not per megabyte
                print(f"{name:34} {median * 1000:8.1f} {'':8} {'':>8}")
            else:
                print(f"{name:34} {median * 1000:8.1f} {total / len(clips) / median / 1e6:8.0f} {median / baseline:7.1f}x")
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def _pong(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    main()

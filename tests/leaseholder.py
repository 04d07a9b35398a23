"""A process that tries to take one clip's lease, for tests/test_lease.py (another machine's worker).

    python tests/leaseholder.py STORE_URL CLIP TTL GO STOP [REDIS_URL]

Waits until the file GO exists (so several start at once), tries the lease once without waiting,
prints `won` or `busy HOLDER`, and when it won prints `held` and keeps the lease (renewing it)
until the file STOP exists, then releases it and prints `released`. An S3 store is reached through
boto3's own settings (AWS_ENDPOINT_URL_S3 and the AWS_* credentials in the environment).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from shotflow.store.lease import LeaseBusy, RedisLease, StoreLease
from shotflow.store.shared import open_store, parse_store


def wait_for_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            sys.exit(f"{path} never appeared")
        time.sleep(0.002)


def main() -> None:
    store_url, clip, ttl, go, stop = sys.argv[1:6]
    redis_url = sys.argv[6] if len(sys.argv) > 6 else None
    store = open_store(parse_store(store_url, default=Path.cwd()))
    if redis_url:
        lease = RedisLease(redis_url, store.location.url, clip, ttl=float(ttl))
    else:
        lease = StoreLease(store, clip, ttl=float(ttl), clock_skew=0.5)
    print("ready", flush=True)
    wait_for_file(Path(go), 60)
    try:
        with lease:
            print("won", flush=True)
            print("held", flush=True)
            wait_for_file(Path(stop), 120)
            lease.ensure()
    except LeaseBusy as busy:
        print(f"busy {busy.holder}", flush=True)
        return
    print("released", flush=True)


if __name__ == "__main__":
    main()

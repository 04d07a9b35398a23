"""A team's machines: what a deployment carries to its workers, the secrets they load, and (slow)
the whole cluster of tests/cluster.py: two workers of one pool on one shared store.

The slow test runs real processes: `prefect server start`, redis-server, moto's S3, the fake fal
server, and two `prefect worker` processes with their own homes and caches. Three storyboards that
share 4 shots are submitted at once; one machine is killed (SIGKILL to every process group of its
worker) once the fake server has accepted its run's submit; that run is set back to Scheduled
through the API and the other machine runs it, re-attaching to the request the dead one paid for.
"""

from __future__ import annotations

import json
import shutil
import time

import httpx
import pytest
import teamservers
from cluster import BUCKET, FINAL, SECRETS_BLOCK, Cluster
from shotflow.tasks.limits import SLOT_LEASE_SECONDS
from waiting import wait_for

from shotflow.errors import ShotflowError
from shotflow.media.probe import probe
from shotflow.settings import Settings, SettingsError


def team_settings(**values) -> Settings:
    return Settings(SHOTFLOW_STORE="s3://team-bucket/videos", SHOTFLOW_LEASE_TTL="12", **values)


def test_a_deployment_carries_the_store_and_leaves_secrets_to_the_secret_block():
    from shotflow.deployments.storyboards import team_env

    endpoint = {"AWS_ENDPOINT_URL_S3": "http://s3.internal:9000", "AWS_REGION": "eu-west-3", "AWS_SECRET_ACCESS_KEY": "x"}
    env = team_env(team_settings(SHOTFLOW_REDIS_URL="redis://redis.internal:6379/0"), endpoint)
    assert env == {
        "SHOTFLOW_STORE": "s3://team-bucket/videos",
        "SHOTFLOW_LEASE_TTL": "12",
        "SHOTFLOW_REDIS_URL": "redis://redis.internal:6379/0",
        "AWS_ENDPOINT_URL_S3": "http://s3.internal:9000",
        "AWS_REGION": "eu-west-3",
    }
    # a Redis URL with a password stays out of the deployment: the Secret block holds it
    with_password = team_settings(SHOTFLOW_REDIS_URL="redis://:hunter2-pw@redis.internal:6379/0", SHOTFLOW_SECRETS_BLOCK="team")
    env = team_env(with_password, {})
    assert "SHOTFLOW_REDIS_URL" not in env and env["SHOTFLOW_SECRETS_BLOCK"] == "team"
    with pytest.raises(ShotflowError) as refused:
        team_env(team_settings(SHOTFLOW_REDIS_URL="redis://:hunter2-pw@redis.internal:6379/0"), {})
    assert "SHOTFLOW_SECRETS_BLOCK" in str(refused.value) and "hunter2" not in str(refused.value)
    # the team's daily budget goes with the store: every worker holds its runs to it
    budgeted = team_env(team_settings(SHOTFLOW_DAILY_BUDGET="$40"), {"AWS_DEFAULT_REGION": "eu-west-3"})
    assert budgeted["SHOTFLOW_DAILY_BUDGET"] == "40" and budgeted["AWS_DEFAULT_REGION"] == "eu-west-3"
    # one machine's store needs nothing carried
    assert team_env(Settings(), {}) == {}


def test_prefect_yaml_gives_the_team_settings_to_every_deployment(monkeypatch):
    import yaml
    from shotflow.deployments.storyboards import prefect_yaml

    monkeypatch.setenv("SHOTFLOW_STORE", "s3://team-bucket/videos")
    monkeypatch.setenv("SHOTFLOW_SECRETS_BLOCK", "team-secrets")
    config = yaml.safe_load(prefect_yaml("team-pool"))
    pools = [d["work_pool"] for d in config["deployments"]]
    assert pools and all(p["name"] == "team-pool" for p in pools)
    assert all(p["job_variables"]["env"]["SHOTFLOW_STORE"] == "s3://team-bucket/videos" for p in pools)
    assert all(p["job_variables"]["env"]["SHOTFLOW_SECRETS_BLOCK"] == "team-secrets" for p in pools)


def test_the_secret_block_sets_only_what_the_worker_has_not_set():
    from shotflow.tasks.secrets import apply_secret_env

    environ = {"AWS_REGION": "eu-west-3", "FAL_KEY": ""}
    values = {"AWS_ACCESS_KEY_ID": "AKIA-test", "AWS_REGION": "us-east-1", "FAL_KEY": "id:secret", "SHOTFLOW_LEASE_TTL": 20}
    assert apply_secret_env(json.dumps(values), "team", environ) == ["AWS_ACCESS_KEY_ID", "FAL_KEY", "SHOTFLOW_LEASE_TTL"]
    assert environ == {
        "AWS_REGION": "eu-west-3",
        "AWS_ACCESS_KEY_ID": "AKIA-test",
        "FAL_KEY": "id:secret",
        "SHOTFLOW_LEASE_TTL": "20",
    }
    for wrong in ("not json", ["FAL_KEY"], {"FAL KEY": "x"}, {"FAL_KEY": {"nested": "secret-value"}}):
        with pytest.raises(SettingsError) as refused:
            apply_secret_env(wrong, "team", {})
        assert "'team'" in str(refused.value) and "secret-value" not in str(refused.value)


# --- the cluster (slow) ---------------------------------------------------------------------------

BOARDS = ("team-evening", "team-morning", "team-weekend")
DISTINCT_SHOTS = 7  # 4 shared (harbour, lighthouse, gulls, boats) + one of each storyboard's own


def journal_records(cluster) -> list[dict]:
    """The journal's records in the bucket (helper A's layout: jobs/<key>.json under the store's prefix)."""
    client = teamservers.s3_client(cluster.s3)
    records = []
    for key in cluster.bucket_keys():
        if key.startswith("team/jobs/") and key.endswith(".json"):
            records.append(json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read()))
    return records


def placed(cluster, runs: dict[str, str]) -> dict[str, str] | None:
    """{run id: machine} once every run's process is running on a machine."""
    where = {run_id: cluster.machine_of(run_id) for run_id in runs.values()}
    for run_id, machine in where.items():
        if machine is None and cluster.state(run_id)["type"] in FINAL:
            pytest.fail(f"run {run_id} ended before it was seen on a machine: {cluster.state(run_id)}\n{cluster.diagnostics()}")
    return where if all(where.values()) else None


class Unblock:
    """While the fake server holds every job, the lone machine's run may wait for a slot of the
    global limit that held jobs of the other machine's runs occupy: when nothing new was submitted
    for a while, let the held jobs finish (release) and hold the next ones again."""

    def __init__(self, fake, quiet: float = 5):
        self.fake, self.quiet = fake, quiet
        self.count, self.since = 0, time.monotonic()

    def __call__(self) -> None:
        count = len(self.fake.jobs)
        if count != self.count:
            self.count, self.since = count, time.monotonic()
        elif time.monotonic() - self.since > self.quiet and any(j.held for j in self.fake.jobs.values()):
            self.fake.release()
            self.fake.hold()
            self.since = time.monotonic()


@pytest.mark.slow  # real servers and two workers on a 2-core machine: minutes
def test_two_machines_pay_once_for_shared_shots_and_finish_a_dead_machines_run(tmp_path):
    teamservers.redis_binary()  # skipped (failed under CI) without redis-server
    outputs = tmp_path / "outputs"
    with Cluster(tmp_path / "cluster", limit=2, lease_ttl=10, worker_limit=2) as cluster:
        fake = cluster.fake
        deployments = cluster.deployments()
        assert sorted(deployments) == list(BOARDS), cluster.deploy_output
        for deployment in deployments.values():  # the team's settings, and none of its secrets
            env = deployment["job_variables"]["env"]
            assert env["SHOTFLOW_STORE"] == cluster.store_url and env["SHOTFLOW_LEASE_TTL"] == "10"
            assert env["SHOTFLOW_SECRETS_BLOCK"] == SECRETS_BLOCK and "SHOTFLOW_REDIS_URL" not in env
            shown = json.dumps(deployment)
            assert all(secret not in shown for secret in cluster.secrets().values())

        fake.hold()  # every job stays in progress until released: the kill lands while they run
        # one request at a time per run: three runs want three slots of the global limit of two
        runs = cluster.submit(list(BOARDS), {"backend": "fal", "concurrency": 1}, out=outputs)
        where = wait_for(
            "the three runs to start on the two machines", lambda: placed(cluster, runs), 600, 1, cluster.diagnostics
        )
        per_machine = {m: [r for r, at in where.items() if at == m] for m in cluster.machines}
        assert sorted(len(r) for r in per_machine.values()) == [1, 2], per_machine  # each worker takes at most 2
        victim = next(m for m, r in per_machine.items() if len(r) == 1)
        (victim_run,) = per_machine[victim]
        victim_board = next(name for name, run_id in runs.items() if run_id == victim_run)
        survivor = next(m for m in cluster.machines if m != victim)

        unblock = Unblock(fake)

        def victims_submit():
            """A record of the victim's run that fal accepted (its job still held), none of its half-sent."""
            unblock()
            mine = [r for r in journal_records(cluster) if (r.get("storyboard") or "").endswith(f"/{victim_board}.yaml")]
            if any(r["state"] == "intended" for r in mine):
                return None
            held = [r for r in mine if r["state"] == "submitted" and r["request_id"] in fake.jobs]
            return [r for r in held if fake.jobs[r["request_id"]].held]

        accepted = wait_for(f"machine {victim}'s run {victim_board} to have a submit accepted", victims_submit, 600, 1)
        # with concurrency 1 its one generation waits for that held job: nothing of it is half-sent
        killed = cluster.kill_machine(victim)
        killed_at = time.monotonic()
        assert cluster.machine_of(victim_run) is None and killed
        jobs_at_kill = len(fake.jobs)
        # the run still looks Running to the server: the operator's automation (or this test) sets it
        # back to Scheduled, and the live machine's worker runs it again
        assert cluster.state(victim_run)["type"] == "RUNNING"
        cluster.reschedule(victim_run)
        fake.release()
        states = cluster.wait_finished(list(runs.values()), 900)
        assert all(s["type"] == "COMPLETED" for s in states.values()), f"{states}\n{cluster.diagnostics()}"
        assert victim_run in cluster.machines[survivor].log.read_text()

        # each distinct request paid for once, across both machines, the dead one's included
        assert len(fake.billed) == DISTINCT_SHOTS and set(fake.billed.values()) == {1}, fake.billed
        assert len(fake.jobs) >= jobs_at_kill
        records = {r["request_id"]: r for r in journal_records(cluster)}
        for record in accepted:  # the dead machine's request was collected, not bought again
            assert records[record["request_id"]]["state"] == "downloaded", records[record["request_id"]]
        # the fal-requests limit held both machines. The dead machine's request stays on fal until the
        # re-run collects it, but its slot lapses on the server 60 s after its last renewal (by design:
        # README), at least a quarter of the lease after the kill (renewed every 3/4 of it): it counts
        # until then, every other request until it is delivered
        lapsed = killed_at + SLOT_LEASE_SECONDS / 4
        peak = fake.peak_in_flight({record["request_id"]: lapsed for record in accepted})
        assert peak <= cluster.limit, (peak, fake.max_in_flight)

        keys = cluster.bucket_keys()
        for board in BOARDS:  # outputs/<storyboard>/<the video's path under the run's folder, else its name>
            for name in (f"/{board}.mp4", f"/{board}.manifest.json"):
                assert any(k.startswith(f"team/outputs/{board}/") and k.endswith(name) for k in keys), [
                    k for k in keys if "/outputs/" in k
                ]
        links = {board: cluster.urls(runs[board]) for board in BOARDS}

        # nothing on the machines is needed any more: their caches and the videos they wrote go
        for name in cluster.machines:
            cluster.stop_machine(name)
            shutil.rmtree(cluster.machines[name].cache)
        shutil.rmtree(outputs, ignore_errors=True)
        for board, urls in links.items():
            video = [u for u in urls if f"/{board}.mp4" in u]
            manifest = [u for u in urls if f"/{board}.manifest.json" in u]
            assert video and manifest, urls
            body = httpx.get(video[0], timeout=30).raise_for_status().content
            (tmp_path / f"{board}.mp4").write_bytes(body)
            assert probe(tmp_path / f"{board}.mp4").duration > 4
            shots = json.loads(httpx.get(manifest[0], timeout=30).raise_for_status().content)["shots"]
            assert {s["request_id"] for s in shots} <= set(fake.jobs), shots

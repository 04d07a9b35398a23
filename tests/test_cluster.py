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

import pytest

from shotflow.errors import ShotflowError
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

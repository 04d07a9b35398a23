"""The one place configuration is read (environment variables, or a `.env` file)."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shotflow.errors import ShotflowError

# hosts fal serves generated media from; SHOTFLOW_MEDIA_HOSTS (comma-separated) adds to these.
# An entry is a host name (it and its subdomains match, on any port) or host:port (that port only).
FAL_MEDIA_HOSTS = ("fal.media", "v2.fal.media", "v3.fal.media", "v3b.fal.media", "storage.googleapis.com")
# seconds to wait for another run holding a clip's journal lock: also the default of a Journal
# opened without settings
LOCK_TIMEOUT = 300.0


class Settings(BaseSettings):
    # NaN and infinity are no setting's value (an infinite poll interval or budget is a typo): for
    # every float and Decimal field, pydantic says "Input should be a finite number"
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", allow_inf_nan=False)

    fal_key: SecretStr | None = Field(None, validation_alias="FAL_KEY")
    # name of a Prefect Secret block holding the key, used when FAL_KEY is not set
    fal_key_block: str | None = Field(None, validation_alias="SHOTFLOW_FAL_KEY_BLOCK")
    cache_dir: Path = Field(Path.home() / ".cache" / "shotflow", validation_alias="SHOTFLOW_CACHE_DIR")
    # NoDecode: a comma-separated list, not JSON (pydantic-settings would json.loads "127.0.0.1")
    media_hosts: Annotated[tuple[str, ...], NoDecode] = Field((), validation_alias="SHOTFLOW_MEDIA_HOSTS")
    max_download_bytes: int = Field(2 << 30, gt=0, validation_alias="SHOTFLOW_MAX_DOWNLOAD_BYTES")
    concurrency: int = Field(4, ge=1, validation_alias="SHOTFLOW_CONCURRENCY")
    # name of the Prefect global concurrency limit on in-flight fal requests (server mode)
    concurrency_limit_name: str = Field("fal-requests", validation_alias="SHOTFLOW_CONCURRENCY_LIMIT")
    # a completed request's media is fetched again (without paying) until this long after completion
    media_retention_days: float = Field(7, gt=0, validation_alias="SHOTFLOW_MEDIA_RETENTION_DAYS")
    # estimated spend allowed per UTC day across all runs on this store; None: no cap
    daily_budget: Decimal | None = Field(None, ge=0, validation_alias="SHOTFLOW_DAILY_BUDGET")
    # False ("0"): `shotflow run` waits for Prefect before it sends anything (no early start)
    early_start: bool = Field(True, validation_alias="SHOTFLOW_EARLY_START")

    # --- how generation waits and tries again (shotflow.generation.retry says which layer retries what)
    # seconds between status polls of a fal request
    fal_poll_interval: float = Field(1.0, gt=0, validation_alias="SHOTFLOW_FAL_POLL_INTERVAL")
    # in-call retries of a submit fal did not take (408/429/503, no connection) and of status polls
    # and result fetches fal_client does not retry itself (5xx, a young request's 404)
    fal_retries: int = Field(4, ge=0, validation_alias="SHOTFLOW_FAL_RETRIES")
    # the first wait of those retries and of downloads (seconds); it doubles, up to 30 s, with jitter
    fal_retry_backoff: float = Field(1.0, gt=0, validation_alias="SHOTFLOW_FAL_RETRY_BACKOFF")
    # how long one attempt waits for a queued or running request before leaving it to the task's
    # next attempt (it keeps running on fal and is re-attached); empty or "none": no limit
    fal_wait_timeout: float | None = Field(600.0, gt=0, validation_alias="SHOTFLOW_FAL_WAIT_TIMEOUT")
    # sent to fal as X-Fal-Request-Timeout: a job that cannot start within it is dropped, unbilled;
    # empty or "none": it waits in fal's queue as long as fal lets it
    fal_start_timeout: float | None = Field(3600.0, gt=1, validation_alias="SHOTFLOW_FAL_START_TIMEOUT")
    # GETs of a clip in one attempt (a cut connection, a 5xx, a broken stream) before giving up
    download_attempts: int = Field(4, ge=1, validation_alias="SHOTFLOW_DOWNLOAD_ATTEMPTS")
    # seconds one GET of a clip may stall (connecting: at most 15 s)
    download_timeout: float = Field(60.0, gt=0, validation_alias="SHOTFLOW_DOWNLOAD_TIMEOUT")
    # how far (seconds) a downloaded clip's length may be from the shot's before it is quarantined
    duration_tolerance: float = Field(1.0, ge=0, validation_alias="SHOTFLOW_DURATION_TOLERANCE")
    # seconds to wait for another run holding a clip's journal lock (or the daily-budget lock)
    lock_timeout: float = Field(LOCK_TIMEOUT, gt=0, validation_alias="SHOTFLOW_LOCK_TIMEOUT")

    # --- many machines (shotflow.store.team) ---------------------------------------------------
    # where what workers share lives: unset (the clip store in SHOTFLOW_CACHE_DIR, as on one machine),
    # or an object-store URL (s3://bucket/prefix; gs:// and az:// untested): SHOTFLOW_CACHE_DIR is
    # then this machine's cache of it. A local folder here is the clip store itself (= the cache dir)
    store: str | None = Field(None, validation_alias="SHOTFLOW_STORE")
    # a Redis server every worker reaches: clips' leases are Redis locks (else conditional writes in
    # the store). It may hold a password: messages show only its host, port and database
    redis_url: str | None = Field(None, validation_alias="SHOTFLOW_REDIS_URL")
    # seconds a clip's lease lives without a renewal: how long a dead worker's shot waits for another
    lease_ttl: float = Field(30.0, ge=5, validation_alias="SHOTFLOW_LEASE_TTL")
    # name of a Prefect Secret block holding a JSON object of environment variables (AWS keys, a Redis
    # URL with its password, FAL_KEY): a deployment's flow sets those not already set when it starts
    secrets_block: str | None = Field(None, validation_alias="SHOTFLOW_SECRETS_BLOCK")

    @field_validator("fal_key", mode="before")
    @classmethod
    def _strip_key(cls, value):
        # a pasted key often carries a trailing newline; the shape is checked by falkey.clean_key
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    @field_validator("cache_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # "~/.cache/shotflow" (in .env, where no shell expands it) is the home's, and a relative
        # folder the one under where the process started: every reader opens the same store
        try:
            return Path(os.path.abspath(value.expanduser()))
        except RuntimeError as exc:  # "~someone" who is not a user here
            raise ValueError(f"cannot expand {str(value)!r} ({exc}): give the full path") from None

    @model_validator(mode="after")
    def _one_local_store(self):
        # a local SHOTFLOW_STORE is the clip store, so it is the cache dir: one folder, one rule
        value = (self.store or "").strip()
        if not value or "://" in value and not value.startswith("file://"):
            return self
        folder = Path(os.path.abspath(Path(value.removeprefix("file://")).expanduser()))
        if "cache_dir" in self.model_fields_set and self.cache_dir != folder:
            raise ValueError(
                f"SHOTFLOW_STORE={value} and SHOTFLOW_CACHE_DIR={self.cache_dir} name two local folders: a local "
                "store is the clip store itself; set one of them"
            )
        self.cache_dir = folder
        return self

    @property
    def shared_store(self) -> bool:
        """Whether SHOTFLOW_STORE names an object store other machines share."""
        value = (self.store or "").strip()
        return "://" in value and not value.startswith("file://")

    @field_validator("daily_budget", mode="before")
    @classmethod
    def _dollars(cls, value):
        if isinstance(value, str):
            value = value.strip().lstrip("$") or None
        return value

    @field_validator("fal_wait_timeout", "fal_start_timeout", mode="before")
    @classmethod
    def _no_limit(cls, value):
        if isinstance(value, str) and value.strip().lower() in ("", "none"):
            return None
        return value

    @field_validator("media_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value):
        if isinstance(value, str):
            return tuple(h.strip().lower() for h in value.split(",") if h.strip())
        return value

    @property
    def allowed_media_hosts(self) -> frozenset[str]:
        return frozenset(FAL_MEDIA_HOSTS) | frozenset(self.media_hosts)

    @property
    def names_a_key(self) -> bool:
        """Whether a fal key is available: FAL_KEY, or the name of a Prefect Secret block holding it
        (read, and its shape checked, where it is loaded: tasks/secrets.py)."""
        return self.fal_key is not None or bool(self.fal_key_block)


class SettingsError(ShotflowError):
    """An environment variable (or .env line) with a value shotflow cannot use."""


def get_settings() -> Settings:
    """The settings; a bad value is one SettingsError line per variable (never a key's value)."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "settings"
            # never the key's value; a check of several settings gets them all (the key too) as input
            got = "" if name == "FAL_KEY" or not err["loc"] else f" (got {err.get('input')!r})"
            lines.append(f"{name}: {err['msg'].removeprefix('Value error, ')}{got}")
        raise SettingsError("\n".join(lines)) from None

"""Process settings: one class, loaded once from the environment, validated at start-up."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetcore.errors import ConfigError

# A token secret must carry at least 32 random bytes (RFC 7518 §3.2: an HS256 key as long as the hash output).
MIN_SECRET_BYTES = 32
# Base64url or hex of 32 random bytes has far more than 10 distinct characters (hex: 16 symbols, not always all
# present in 64 characters); a word repeated, or a run of one
# character, has few (a cheap guard against "x" * 40, not an entropy proof).
MIN_SECRET_DISTINCT_CHARS = 10
# Secrets published in this project's history, docs or common examples: never accepted.
KNOWN_SECRETS = frozenset({"change-me-in-production", "changeme", "change-me", "secret", "your-secret-key"})


# IANA-registered MQTT ports: plain and over TLS.
MQTT_PORT, MQTTS_PORT = 1883, 8883


class MqttUrl:
    """Parsed `mqtt://user:pass@host:port` (or `mqtts://` over TLS) URL."""

    def __init__(self, url: str, protocol: str = "5", ca_file: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
            raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"MQTT URL has no host: {url!r}")
        self.url = url
        self.tls = parts.scheme in ("mqtts", "ssl")
        # CA bundle that signed the broker's certificate (None: the system's trusted CAs).
        self.ca_file = ca_file
        self.host: str = parts.hostname
        self.port: int = parts.port or (MQTTS_PORT if self.tls else MQTT_PORT)
        self.username: str | None = parts.username
        self.password: str | None = parts.password
        # "5" everywhere in production; "3.1.1" only for brokers without MQTT 5 (the demo's amqtt fallback).
        self.protocol = protocol

    def __repr__(self) -> str:
        return f"MqttUrl({'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port})"

    def configure(self, client: object) -> None:
        """Credentials and TLS on a paho client, the same for every process and the simulator's devices."""
        if self.username:
            client.username_pw_set(self.username, self.password)  # type: ignore[attr-defined]
        if self.tls:
            client.tls_set(ca_certs=self.ca_file)  # type: ignore[attr-defined]  # verifies the broker's name


class Settings(BaseSettings):
    """All settings of every process; each reads only what it needs."""

    model_config = SettingsConfigDict(env_prefix="FLEET_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    # libpq URL; empty means "use the embedded server" (only `fleet demo` starts one).
    database_url: str | None = None
    mqtt_url: str | None = None
    # With an mqtts:// URL: the CA certificate that signed the broker's (unset: the system's trusted CAs).
    mqtt_ca_file: str | None = None
    # MQTT protocol version the clients speak. Keep 5 (persistent sessions with expiry, shared subscriptions);
    # 3.1.1 exists only for brokers that lack MQTT 5, such as the in-process amqtt broker of `fleet demo`.
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    # Topic root: `{root}/devices/{device_id}/{kind}`. Tests give each test its own root.
    topic_root: str = "fleet/v1"
    # auto: use TimescaleDB when the server has it; on: require it; off: plain PostgreSQL.
    timescale: Literal["auto", "on", "off"] = "auto"
    readings_chunk_interval: str = "1 day"
    readings_retention_days: int = Field(default=400, ge=1)

    # Signs API access tokens (HS256). No default: `fleet api` will not start without one, and a short, repeated
    # or published value is refused in every environment (`fleet demo` generates one per installation).
    secret_key: str | None = None
    # Personal identifiers at rest (fleetcore/crypto.py): AES-256-GCM data keys `kid:base64url,...` (the first
    # encrypts, all decrypt) and the blind-index HMAC key. Outside production they default to keys derived from
    # the secret key; production requires both.
    data_keys: str | None = None
    blind_index_key: str | None = None
    token_issuer: str = "fleet-platform"
    token_audience: str = "fleet-api"
    access_token_minutes: int = Field(default=60, ge=1)
    # Login throttling (OWASP: lock after a few failures, per account and per source): failures allowed within the
    # window per username and per address, then logins are refused (429 + Retry-After) for the lockout.
    login_max_failures_user: int = Field(default=5, ge=1)
    login_max_failures_ip: int = Field(default=20, ge=1)
    login_window_s: int = Field(default=900, ge=1)
    login_lockout_s: int = Field(default=900, ge=1)

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    # Database connections per API process. A request holds at most one; requests beyond this wait in the event
    # loop (not in a worker thread) for up to api_db_wait_s, then get 503 + Retry-After. Keep it at or below the
    # anyio thread pool (40 threads by default), which runs the sync routes that use the connections.
    api_pool_size: int = Field(default=20, ge=1, le=40)
    # Connections opened at start and kept open (the pool grows to api_pool_size under load).
    api_pool_min: int = Field(default=2, ge=1, le=40)
    api_db_wait_s: float = Field(default=10.0, gt=0)
    # Browser origins allowed to call the API cross-site (comma-separated, e.g. https://ops.example.com); empty:
    # same-origin only (the console is served by the API itself).
    api_cors_origins: str = ""
    # Largest request body accepted (413 beyond): a vehicle CSV of ~20,000 rows fits.
    api_max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    # The dispatcher console's operations board counts a day's pickups and returns from local midnight here.
    console_timezone: str = "Europe/Berlin"

    # Ingest batching: flush when this many rows are held or this many ms passed.
    ingest_batch_size: int = Field(default=2000, ge=1)
    ingest_batch_ms: int = Field(default=200, ge=1)
    # Upper bound on un-acknowledged messages held in memory (back-pressure).
    ingest_max_inflight: int = Field(default=20000, ge=1)
    # ... and on their payload bytes (received, not yet committed): the worker stops reading the socket beyond it.
    ingest_max_inflight_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # Per message: a larger payload is rejected as too_large (its first 1 KiB kept), more samples (array elements,
    # NMEA fixes) as too_many_samples. Defaults: fleetcore.contract.MAX_PAYLOAD_BYTES / MAX_SAMPLES_PER_MESSAGE.
    ingest_max_payload_bytes: int = Field(default=256 * 1024, ge=1024)
    ingest_max_samples: int = Field(default=2000, ge=1)
    # Database connections per ingest worker, each committing its own batch; acks still go out in order.
    ingest_writers: int = Field(default=2, ge=1, le=16)
    # vehicle_state: 0 (default) = upserted in each batch's own transaction, committed with its readings;
    # > 0 = written coalesced over committed batches (ingest.state) once this many ms passed since the oldest
    # committed, not yet applied batch, or once ingest_state_flush_messages wait for it, and messages acknowledged
    # after it (less PostgreSQL work per message, more worker CPU: for a database shared by many workers).
    ingest_state_flush_ms: int = Field(default=0, ge=0)
    ingest_state_flush_messages: int = Field(default=20000, ge=1)
    ingest_client_id: str = "fleet-ingest"
    ingest_share_group: str | None = None
    ingest_session_expiry_s: int = Field(default=86400, ge=0)
    ingest_metrics_port: int | None = None
    # The parser's compiled fast path (fleetcore/protocol/_fastparse.c); false = the Python code for every message (a switch
    # for diagnosis: both give identical results; the Python code costs 2-15x the parser CPU, 2x the worker's).
    ingest_compiled_parser: bool = True

    # The monitor's MQTT client id = its persistent session: unique and stable per worker; with `{slot}` each
    # worker claims the lowest free slot number (fleetcore.slots), as ingest does.
    monitor_client_id: str = "fleet-monitor"
    # When set, monitor workers subscribe to `$share/<group>/<root>/devices/+/...` and split the stream.
    monitor_share_group: str | None = None
    # How long the broker keeps queueing for a stopped monitor (what it publishes meanwhile is judged on restart).
    monitor_session_expiry_s: int = Field(default=86400, ge=0)
    # Unacknowledged messages the broker may send the monitor (MQTT 5 Receive Maximum, at most 65,535).
    monitor_max_inflight: int = Field(default=20000, ge=1, le=65535)

    # The outbox's SMTP relay (smtp://user:pass@host:25, smtp+starttls://…:587, smtps://…:465); unset: e-mails stay
    # queued (nothing is sent, nothing is lost).
    smtp_url: str | None = None
    # A budget line whose actual deviates from its budget by more than this % raises a finance notice.
    finance_budget_variance_pct: float = Field(default=10.0, gt=0, le=1000)
    mail_from: str = "Fleet platform <noreply@fleet.invalid>"

    # Protocol gateways (gateways/, docs/gateways.md): vendor protocols in, the device contract out on
    # {root}/devices/{device_id}/..., each republish QoS 1 and acknowledged by the broker within this many seconds
    # before the vendor message is acknowledged.
    gateway_publish_timeout_s: float = Field(default=10.0, gt=0)
    # A vendor sample stamped more than this many days before now (an unset clock: 1970, 2004 after a GPS week
    # rollover, ...) or more than MAX_FUTURE_SKEW_S ahead is not republished, only counted and logged.
    gateway_max_sample_age_days: int = Field(default=30, ge=1)
    gateway_metrics_port: int | None = None
    # Teltonika FMB/FMC over MQTT (codec JSON): the topic filter the trackers publish on; its first `+` level is
    # the IMEI, which (after teltonika_device_prefix) is the device id.
    teltonika_topic: str = "teltonika/+/data"
    teltonika_device_prefix: str = ""
    teltonika_client_id: str = "fleet-gateway-teltonika"
    # AVL ID → contract mapping (JSON); unset: the built-in gateways/teltonika_avl.json.
    teltonika_mapping_file: str | None = None
    # JT/T 808 terminals over TCP.
    jt808_host: str = "127.0.0.1"
    jt808_port: int = Field(default=7611, ge=0, le=65535)
    jt808_client_id: str = "fleet-gateway-jt808"
    # device id = prefix + the terminal's phone number without leading zeros (the same SIM in 2013 and 2019 frames).
    jt808_device_prefix: str = "jt808-"
    # A connection that sends nothing for this long is closed (three missed heartbeats at a 60 s interval).
    jt808_idle_timeout_s: float = Field(default=180.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _check_db_url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not (v.startswith("postgresql://") or v.startswith("postgres://") or "=" in v):
            raise ValueError("FLEET_DATABASE_URL must be a libpq URL such as postgresql://user@host:5432/db")
        return v

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        MqttUrl(v)
        return v

    @field_validator("topic_root")
    @classmethod
    def _check_root(cls, v: str) -> str:
        v = v.strip("/")
        if not v or "+" in v or "#" in v:
            raise ValueError("FLEET_TOPIC_ROOT must be a plain topic prefix without wildcards")
        return v

    @field_validator("console_timezone")
    @classmethod
    def _check_timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as Europe/Berlin)") from None
        return v

    @field_validator("teltonika_topic")
    @classmethod
    def _check_teltonika_topic(cls, v: str) -> str:
        levels = v.split("/")
        if "+" not in levels or "#" in v or any(("+" in lv and lv != "+") for lv in levels):
            raise ValueError(
                "FLEET_TELTONIKA_TOPIC must be a topic filter whose IMEI level is `+`, e.g. teltonika/+/data"
            )
        return v

    @field_validator("secret_key")
    @classmethod
    def _check_secret(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if problem := secret_problem(v):
            raise ValueError(f"FLEET_SECRET_KEY {problem}; generate one with {SECRET_HOWTO}")
        return v

    @property
    def cors_origins(self) -> tuple[str, ...]:
        return tuple(o.strip() for o in self.api_cors_origins.split(",") if o.strip())

    @property
    def mqtt(self) -> MqttUrl:
        if not self.mqtt_url:
            raise ConfigError("FLEET_MQTT_URL is not set")
        return MqttUrl(self.mqtt_url, protocol=self.mqtt_protocol, ca_file=self.mqtt_ca_file)

    def require_database_url(self) -> str:
        if not self.database_url:
            raise ConfigError("FLEET_DATABASE_URL is not set (only `fleet demo` starts an embedded database)")
        return self.database_url

    def require_secret_key(self) -> str:
        """The token secret; a process that signs or checks tokens refuses to start without one."""
        if not self.secret_key:
            raise ConfigError(f"FLEET_SECRET_KEY is not set; generate one with {SECRET_HOWTO}")
        return self.secret_key


SECRET_HOWTO = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def secret_problem(secret: str) -> str | None:
    """Why `secret` may not sign tokens (None when it may): empty, published, short or low-variety."""
    if not secret.strip():
        return "is empty"
    if secret.strip().lower() in KNOWN_SECRETS:
        return "is a published placeholder"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    if len(set(secret)) < MIN_SECRET_DISTINCT_CHARS:
        return f"has fewer than {MIN_SECRET_DISTINCT_CHARS} distinct characters (not random)"
    return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, loaded once."""
    return Settings()

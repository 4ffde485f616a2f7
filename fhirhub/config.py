"""Settings read once from the environment and passed explicitly (nothing global)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from fhirhub.fhir.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

BACKENDS = ("postgresql", "sqlite")


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be on/off, got {raw!r}")


def _url_limit(env: dict[str, str], default: int) -> int:
    value = _int(env, "FHIRHUB_MAX_URL_BYTES", default)
    if not 256 <= value <= 8190:  # gunicorn reads no longer request line than 8190 bytes
        raise ConfigurationError(f"FHIRHUB_MAX_URL_BYTES must be 256..8190, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    # Public base URL of the FHIR endpoint; used in Location headers and Bundle links.
    base_url: str = ""
    # When set, this MongoDB is used and nothing embedded starts (production path).
    mongodb_uri: str | None = None
    db_name: str = "fhirhub"
    db_backend: str = "postgresql"
    db_port: int = 27018
    pg_port: int = 54329
    var_dir: Path = field(default_factory=lambda: PROJECT_ROOT / "var")
    tools_dir: Path = field(default_factory=lambda: PROJECT_ROOT / ".tools")
    cache_dir: Path = field(default_factory=lambda: PROJECT_ROOT / ".cache")
    web_workers: int = 2
    max_body_bytes: int = 16 * 1024 * 1024
    # Longest request line gunicorn reads (method, URL, protocol); 414 beyond. 8190 is
    # gunicorn's own maximum.
    max_url_bytes: int = 8190
    seed_on_empty: bool = True
    db_timeout_ms: int = 5000
    db_socket_timeout_ms: int = 60000
    # Server-side limit on each search and history query (storage/budget.py).
    query_timeout_ms: int = 20000
    # What one batch/transaction Bundle over the API may ask for (service/bundle_limits.py).
    bundle_max_entries: int = 10_000
    bundle_max_search_results: int = 10_000
    bundle_timeout_ms: int = 60_000
    proxy_hops: int = 0
    # gunicorn's per-request access log on stdout. Off by default: every /fhir request is
    # already in the AuditEvent log (who, what, outcome), and formatting and writing the
    # line costs the web process about 8% of its CPU per request.
    access_log: bool = False
    # Notifications (subscriptions and care-team routing); see README "Notifications".
    # Empty: loopback and public addresses with the embedded database (dev), public otherwise.
    notify_allowed_hosts: str = ""
    notify_timeout_ms: int = 5_000
    # Retries (worker/retries.py): refusals of one event before it is suspected poison; a
    # backoff from base doubling to the cap; the horizon from an event's first failure
    # after which a receiver still unavailable is given up (subscriber set to error).
    notify_max_attempts: int = 10
    notify_retry_base_ms: int = 1_000
    notify_retry_max_ms: int = 600_000
    notify_retry_horizon_ms: int = 72 * 3600 * 1000
    worker_lease_ms: int = 30_000
    worker_threads: int = 8
    worker_poll_ms: int = 100
    start_worker: bool = True
    # Durable timers run by `fhirhub worker` (fhirhub/timers): threads and scan interval.
    timer_threads: int = 4
    timer_poll_ms: int = 250
    # Outbound channels (fhirhub/channels): smtp://user:pass@host:port[?starttls] or
    # smtps://...; an HTTP SMS gateway; the sender address and number.
    # Scheduling (fhirhub/scheduling): the zone of actors that state none, how long a
    # $hold keeps a time, reminder offsets before an appointment (ISO 8601 durations).
    timezone: str = "UTC"
    hold_ttl_s: int = 300
    waitlist_offer_ttl_s: int = 7200  # how long a time offered from the waitlist is held
    reminder_offsets: str = "P7D,PT24H,PT2H"
    reminder_retry_base_s: int = 15  # first retry of a failed send; doubles, capped at 5 min
    smtp_url: str = ""
    # Remote patient monitoring: a site's rules file (fhirhub/monitoring/rules/table.py).
    monitoring_rules: str = ""
    smtp_from: str = "fhirhub@localhost"
    sms_url: str = ""
    sms_from: str = ""
    # Open Subscription websockets per web process; each holds one gunicorn thread, and
    # `fhirhub serve` adds this many threads so plain requests keep theirs.
    websocket_max: int = 8
    # Medication safety (fhirhub/medication): severities that refuse a MedicationRequest
    # without an override ("high", "high,moderate", or "" to only warn); a site's
    # knowledge files overriding the shipped tables.
    medication_refuse: str = "high"
    medication_knowledge_dir: str = ""
    # SMART on FHIR authorization (fhirhub/auth). Off is refused unless host is loopback.
    auth: bool = True
    auth_token_ttl: int = 3600
    auth_token_cache_ms: int = 1000
    auth_refresh_ttl: int = 30 * 24 * 3600
    auth_code_ttl: int = 60
    # Failed password logins per username / per client address within the window (seconds)
    # before sign-in answers 429 until the oldest failure leaves the window; 0: no limit.
    auth_login_max_failures: int = 5
    auth_login_max_failures_ip: int = 20
    auth_login_window: int = 300

    @property
    def auth_base(self) -> str:
        """Where the authorization server lives: beside the FHIR base, under /auth."""
        return self.fhir_base.removesuffix("/fhir") + "/auth"

    @property
    def websocket_url(self) -> str:
        """The R4 Subscription websocket, beside the FHIR base: http -> ws, https -> wss."""
        return "ws" + self.fhir_base.removeprefix("http") + "/websocket"

    @property
    def fhir_base(self) -> str:
        return self.base_url or f"http://{self.host}:{self.port}/fhir"

    @property
    def embedded_uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.db_port}/"

    @property
    def effective_mongodb_uri(self) -> str:
        return self.mongodb_uri or self.embedded_uri

    @property
    def uses_embedded_db(self) -> bool:
        return not self.mongodb_uri

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        backend = env.get("FHIRHUB_DB_BACKEND", "postgresql") or "postgresql"
        if backend not in BACKENDS:
            raise ConfigurationError(
                f"FHIRHUB_DB_BACKEND must be one of {', '.join(BACKENDS)}, got {backend!r}"
            )
        defaults = cls()
        return cls(
            host=env.get("FHIRHUB_HOST", defaults.host) or defaults.host,
            port=_int(env, "FHIRHUB_PORT", defaults.port),
            base_url=(env.get("FHIRHUB_BASE_URL") or "").rstrip("/"),
            mongodb_uri=env.get("MONGODB_URI") or None,
            db_name=env.get("FHIRHUB_DB_NAME", defaults.db_name) or defaults.db_name,
            db_backend=backend,
            db_port=_int(env, "FHIRHUB_DB_PORT", defaults.db_port),
            pg_port=_int(env, "FHIRHUB_PG_PORT", defaults.pg_port),
            # Absolute: PostgreSQL runs in its data directory, so a relative socket or lock
            # path under a relative FHIRHUB_VAR_DIR would point somewhere else (start failed).
            var_dir=Path(env["FHIRHUB_VAR_DIR"]).absolute()
            if env.get("FHIRHUB_VAR_DIR")
            else defaults.var_dir,
            tools_dir=Path(env["FHIRHUB_TOOLS_DIR"])
            if env.get("FHIRHUB_TOOLS_DIR")
            else defaults.tools_dir,
            cache_dir=Path(env["FHIRHUB_CACHE_DIR"])
            if env.get("FHIRHUB_CACHE_DIR")
            else defaults.cache_dir,
            web_workers=_int(env, "FHIRHUB_WEB_WORKERS", defaults.web_workers),
            max_body_bytes=_int(env, "FHIRHUB_MAX_BODY_BYTES", defaults.max_body_bytes),
            max_url_bytes=_url_limit(env, defaults.max_url_bytes),
            seed_on_empty=_bool(env, "FHIRHUB_SEED", defaults.seed_on_empty),
            db_timeout_ms=_int(env, "FHIRHUB_DB_TIMEOUT_MS", defaults.db_timeout_ms),
            proxy_hops=_int(env, "FHIRHUB_PROXY_HOPS", defaults.proxy_hops),
            access_log=_bool(env, "FHIRHUB_ACCESS_LOG", defaults.access_log),
            db_socket_timeout_ms=_int(
                env, "FHIRHUB_DB_SOCKET_TIMEOUT_MS", defaults.db_socket_timeout_ms
            ),
            query_timeout_ms=_int(env, "FHIRHUB_QUERY_TIMEOUT_MS", defaults.query_timeout_ms),
            bundle_max_entries=_int(env, "FHIRHUB_BUNDLE_MAX_ENTRIES", defaults.bundle_max_entries),
            bundle_max_search_results=_int(
                env, "FHIRHUB_BUNDLE_MAX_SEARCH_RESULTS", defaults.bundle_max_search_results
            ),
            bundle_timeout_ms=_int(env, "FHIRHUB_BUNDLE_TIMEOUT_MS", defaults.bundle_timeout_ms),
            notify_allowed_hosts=env.get("FHIRHUB_NOTIFY_ALLOWED_HOSTS", "").strip(),
            monitoring_rules=env.get("FHIRHUB_MONITORING_RULES", "").strip(),
            notify_timeout_ms=_int(env, "FHIRHUB_NOTIFY_TIMEOUT_MS", defaults.notify_timeout_ms),
            notify_max_attempts=_int(
                env, "FHIRHUB_NOTIFY_MAX_ATTEMPTS", defaults.notify_max_attempts
            ),
            notify_retry_base_ms=_int(
                env, "FHIRHUB_NOTIFY_RETRY_BASE_MS", defaults.notify_retry_base_ms
            ),
            notify_retry_max_ms=_int(
                env, "FHIRHUB_NOTIFY_RETRY_MAX_MS", defaults.notify_retry_max_ms
            ),
            notify_retry_horizon_ms=_int(
                env, "FHIRHUB_NOTIFY_RETRY_HORIZON_MS", defaults.notify_retry_horizon_ms
            ),
            worker_lease_ms=_int(env, "FHIRHUB_WORKER_LEASE_MS", defaults.worker_lease_ms),
            worker_threads=_int(env, "FHIRHUB_WORKER_THREADS", defaults.worker_threads),
            worker_poll_ms=_int(env, "FHIRHUB_WORKER_POLL_MS", defaults.worker_poll_ms),
            start_worker=_bool(env, "FHIRHUB_WORKER", defaults.start_worker),
            timer_threads=_int(env, "FHIRHUB_TIMER_THREADS", defaults.timer_threads),
            timer_poll_ms=_int(env, "FHIRHUB_TIMER_POLL_MS", defaults.timer_poll_ms),
            timezone=env.get("FHIRHUB_TIMEZONE", "").strip() or defaults.timezone,
            hold_ttl_s=_int(env, "FHIRHUB_HOLD_TTL", defaults.hold_ttl_s),
            waitlist_offer_ttl_s=_int(
                env, "FHIRHUB_WAITLIST_OFFER_TTL", defaults.waitlist_offer_ttl_s
            ),
            reminder_offsets=env.get("FHIRHUB_REMINDER_OFFSETS", "").strip()
            or defaults.reminder_offsets,
            reminder_retry_base_s=_int(
                env, "FHIRHUB_REMINDER_RETRY_BASE_S", defaults.reminder_retry_base_s
            ),
            smtp_url=env.get("FHIRHUB_SMTP_URL", "").strip(),
            smtp_from=env.get("FHIRHUB_SMTP_FROM", "").strip() or defaults.smtp_from,
            sms_url=env.get("FHIRHUB_SMS_URL", "").strip(),
            sms_from=env.get("FHIRHUB_SMS_FROM", "").strip(),
            websocket_max=_int(env, "FHIRHUB_WEBSOCKET_MAX", defaults.websocket_max),
            medication_refuse=env.get("FHIRHUB_MEDICATION_REFUSE", defaults.medication_refuse),
            medication_knowledge_dir=env.get("FHIRHUB_MEDICATION_KNOWLEDGE_DIR", "").strip(),
            auth=_bool(env, "FHIRHUB_AUTH", defaults.auth),
            auth_token_ttl=_int(env, "FHIRHUB_AUTH_TOKEN_TTL", defaults.auth_token_ttl),
            auth_token_cache_ms=_int(
                env, "FHIRHUB_AUTH_TOKEN_CACHE_MS", defaults.auth_token_cache_ms
            ),
            auth_refresh_ttl=_int(env, "FHIRHUB_AUTH_REFRESH_TTL", defaults.auth_refresh_ttl),
            auth_code_ttl=_int(env, "FHIRHUB_AUTH_CODE_TTL", defaults.auth_code_ttl),
            auth_login_max_failures=_int(
                env, "FHIRHUB_AUTH_LOGIN_MAX_FAILURES", defaults.auth_login_max_failures
            ),
            auth_login_max_failures_ip=_int(
                env, "FHIRHUB_AUTH_LOGIN_MAX_FAILURES_IP", defaults.auth_login_max_failures_ip
            ),
            auth_login_window=_int(env, "FHIRHUB_AUTH_LOGIN_WINDOW", defaults.auth_login_window),
        )

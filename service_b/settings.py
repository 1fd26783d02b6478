"""Service B's settings, read from `SERVICE_B_*` environment variables."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The documented demo credentials (`abc` / `def`). Fine on a laptop, never in production:
#: B logs a warning at startup while they are accepted.
DEMO_API_KEY = "abc"
DEMO_API_SECRET = "def"  # noqa: S105 - a documented demo value, flagged at startup

#: The largest integer SQLite stores, and so the largest item id.
SQLITE_MAX_INTEGER = 2**63 - 1


class ApiKeyCredentials(BaseModel):
    """An API key's secret, and the passphrase its logins must carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: SecretStr
    passphrase: SecretStr


#: What `SERVICE_B_API_KEYS` maps a key to: a bare secret (no passphrase check) or both.
ApiKeyEntry = SecretStr | ApiKeyCredentials


def _demo_keys() -> dict[str, ApiKeyEntry]:
    # A bare secret: the demo key has no passphrase, so the documented client logs in.
    return {DEMO_API_KEY: SecretStr(DEMO_API_SECRET)}


class Settings(BaseSettings):
    """Everything B can be configured with; each field is `SERVICE_B_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="SERVICE_B_", frozen=True, extra="ignore")

    database_path: str = Field(
        default="service_b.sqlite3",
        description="SQLite file for the items, or `:memory:` for a store that dies with B.",
    )
    # --- the item store (PostgreSQL when database_url is set); keep these together ---
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql://user:password@host:port/dbname to keep the items in "
        "PostgreSQL; unset, they are in the SQLite file `database_path`.",
    )
    database_pool_min_size: Annotated[int, Field(ge=0)] = Field(
        default=1, description="PostgreSQL connections B keeps open even when idle."
    )
    database_pool_max_size: Annotated[int, Field(ge=1)] = Field(
        default=10,
        description="Most PostgreSQL connections B opens; as many store calls run at once.",
    )
    database_pool_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=5.0,
        description="How long a request waits for a PostgreSQL connection; then it is "
        "answered 503.",
    )
    database_connect_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="How long B waits for PostgreSQL at startup before it fails to start.",
    )
    database_reconnect_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=30.0,
        description="How long the pool retries a lost connection (with backoff) before it "
        "gives that attempt up; it tries again on the next request.",
    )
    database_status_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=1.0,
        description="How long GET /status waits for the store's database to answer.",
    )
    # --- end of the item store's settings ---
    # --- the fan-out across Bs (Redis pub/sub when redis_url is set); keep these together ---
    redis_url: SecretStr | None = Field(
        default=None,
        description="redis://[:password@]host:port to fan broadcast messages and item pushes "
        "out through Redis pub/sub to every B on it; unset, they reach this B's clients only.",
    )
    redis_channel_prefix: Annotated[str, Field(min_length=1)] = Field(
        default="service_b",
        description="Prefix of the Redis channels (`<prefix>:broadcast`, `<prefix>:items`); "
        "the Bs of one deployment share it.",
    )
    redis_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=1.0,
        description="Longest wait to connect to Redis or for one publish to be answered.",
    )
    redis_reconnect_max_seconds: Annotated[float, Field(gt=0)] = Field(
        default=5.0,
        description="Longest pause between attempts to reconnect to Redis (backoff from 0.1 s).",
    )
    # --- end of the fan-out's settings ---
    api_keys: dict[str, ApiKeyEntry] = Field(
        default_factory=_demo_keys,
        description="API key to HMAC secret for /ws/v5/private, as a JSON object; a key may "
        'map to {"secret": ..., "passphrase": ...} instead, and its logins must then carry '
        "that passphrase.",
    )
    allowed_origins: list[str] = Field(
        default=[
            "http://localhost:8000",
            "http://127.0.0.1:8000",
            "http://localhost:8001",
            "http://127.0.0.1:8001",
        ],
        description="Origins a browser may open WebSockets from (JSON list; `*` allows any).",
    )
    max_body_bytes: Annotated[int, Field(ge=1)] = Field(
        default=1024 * 1024,
        description="Largest HTTP request body B reads; a larger one is answered 413.",
    )
    ws_max_message_bytes: Annotated[int, Field(ge=1)] = Field(
        default=1024 * 1024,
        description="Largest WebSocket message B accepts; a larger one closes with 1009.",
    )
    ws_send_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="How long a queued or sent message may wait for the client to take it; "
        "then the client is closed (1013).",
    )
    ws_queue_size: Annotated[int, Field(ge=1)] = Field(
        default=64,
        description="Messages queued per broadcast or items subscriber; more closes it (1013).",
    )
    ws_queue_bytes: Annotated[int, Field(ge=1)] = Field(
        default=1024 * 1024,
        description="Bytes queued per broadcast or items subscriber; more closes it (1013). "
        "A message always fits into an empty queue.",
    )
    login_expiry_seconds: Annotated[float, Field(gt=0)] = Field(
        default=30.0,
        description="How long after its timestamp a login is accepted (OKX: 30 s).",
    )
    login_max_clock_skew_seconds: Annotated[float, Field(ge=0)] = Field(
        default=5.0,
        description="How far in B's future a login timestamp may lie (the client's clock skew).",
    )
    login_replay_cache_size: Annotated[int, Field(ge=1)] = Field(
        default=100_000,
        description="Most accepted logins remembered (for their window) to refuse a replay; "
        "when full, a new login is refused with 60014 and 1013.",
    )
    login_failures_per_second: Annotated[float, Field(gt=0)] = Field(
        default=5.0,
        description="Failed logins a second allowed per client address and per API key.",
    )
    login_failures_burst: Annotated[int, Field(ge=1)] = Field(
        default=10,
        description="Failed logins allowed at once per client address and per API key.",
    )
    login_rate_limit_entries: Annotated[int, Field(ge=1)] = Field(
        default=10_000,
        description="Most client addresses, and most API keys, whose failures are counted.",
    )
    forwarded_allow_ips: list[str] = Field(
        default=[],
        description="Proxies (addresses or networks) whose X-Forwarded-For names the client "
        "address, as the login limits count it (JSON list; none by default: the peer counts).",
    )
    max_header_count: Annotated[int, Field(ge=1)] = Field(
        default=128,
        description="Most header fields in a request head; more is 431. Above A's 100, "
        "as A adds headers when it forwards.",
    )
    max_header_line_bytes: Annotated[int, Field(ge=64)] = Field(
        default=8 * 1024,
        description="Longest header line (name, value, `: `, CRLF); longer is 431, "
        "and a request target longer than this is 414.",
    )
    max_head_bytes: Annotated[int, Field(ge=256)] = Field(
        default=80 * 1024,
        description="Largest request head (request line and header fields); larger is 431. "
        "Above A's 64 KiB, as A adds headers when it forwards.",
    )
    header_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="Seconds a client has to send a whole request head, from the connection's "
        "start or the request's first byte; then 408 and the connection is closed.",
    )
    idle_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=5.0,
        description="Seconds a kept-alive connection may wait idle for its next request.",
    )
    max_client_connections: Annotated[int, Field(ge=1)] = Field(
        default=16384,
        description="Most client connections open at once (lowered to what the open file "
        "limit allows); past it an idle one is closed, else the new one gets 503.",
    )
    enable_pact_provider_states: bool = Field(
        default=False,
        description="Serve POST /_pact/provider_states for Pact verification. Never in production.",
    )

    @field_validator("database_url")
    @classmethod
    def _postgresql_url(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None and not url.get_secret_value().startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError("must start with postgresql:// (or postgres://)")
        return url

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None and not url.get_secret_value().startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("must start with redis:// (or rediss://, unix://)")
        return url

    @model_validator(mode="after")
    def _pool_sizes(self) -> Settings:
        if self.database_pool_min_size > self.database_pool_max_size:
            raise ValueError("database_pool_min_size must not be above database_pool_max_size")
        return self

    def uses_demo_credentials(self) -> bool:
        """Tell whether the documented demo key pair is among the accepted credentials."""
        entry = self.api_keys.get(DEMO_API_KEY)
        if isinstance(entry, ApiKeyCredentials):
            entry = entry.secret
        return entry is not None and entry.get_secret_value() == DEMO_API_SECRET

"""Service B's settings, read from `SERVICE_B_*` environment variables."""

from __future__ import annotations

import logging
from typing import Annotated

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

#: The documented demo credentials (`abc` / `def`). Fine on a laptop, never in production:
#: B logs a warning at startup while they are accepted.
DEMO_API_KEY = "abc"
DEMO_API_SECRET = "def"  # noqa: S105 - a documented demo value, flagged at startup

#: The largest integer SQLite stores, and so the largest item id.
SQLITE_MAX_INTEGER = 2**63 - 1


class Settings(BaseSettings):
    """Everything B can be configured with; each field is `SERVICE_B_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="SERVICE_B_", frozen=True, extra="ignore")

    database_path: str = Field(
        default="service_b.sqlite3",
        description="SQLite file for the items, or `:memory:` for a store that dies with B.",
    )
    api_keys: dict[str, SecretStr] = Field(
        default_factory=lambda: {DEMO_API_KEY: SecretStr(DEMO_API_SECRET)},
        description="API key to HMAC secret for /ws/v5/private, as a JSON object.",
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
    login_max_clock_skew_seconds: Annotated[float, Field(gt=0)] = Field(
        default=30.0,
        description="How far a login timestamp may lie from B's clock.",
    )
    enable_pact_provider_states: bool = Field(
        default=False,
        description="Serve POST /_pact/provider_states for Pact verification. Never in production.",
    )

    def uses_demo_credentials(self) -> bool:
        """Tell whether the documented demo key pair is among the accepted credentials."""
        secret = self.api_keys.get(DEMO_API_KEY)
        return secret is not None and secret.get_secret_value() == DEMO_API_SECRET

"""Service A's settings, read from `SERVICE_A_*` environment variables."""

from __future__ import annotations

from typing import Annotated, Literal

import httpx
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Seconds = Annotated[float, Field(gt=0)]


class Settings(BaseSettings):
    """Everything A can be configured with; each field is `SERVICE_A_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="SERVICE_A_", frozen=True, extra="ignore")

    service_b_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where A reaches service B: one base URL, or several separated by commas "
        "(A spreads its requests and relayed sessions over them; see README, Running several Bs).",
    )
    b_retry_after_seconds: Seconds = Field(
        default=5.0,
        description="With several Bs: seconds a B that could not be connected to is skipped; "
        "then it is tried again.",
    )
    connect_timeout: Seconds = Field(
        default=0.5, description="Seconds to open a connection to B; then 503."
    )
    read_timeout: Seconds = Field(
        default=5.0, description="Seconds to wait for B's answer; then 504."
    )
    write_timeout: Seconds = Field(default=5.0, description="Seconds to send a request to B.")
    request_timeout: Seconds = Field(
        default=10.0,
        description="Seconds one request to B may take in all, from when it starts waiting for "
        "a free connection: still waiting then, 503 (never sent); sent, 504.",
    )
    status_timeout: Seconds = Field(
        default=1.0, description="Seconds `GET /status` waits for B's `/status`."
    )
    max_connections: Annotated[int, Field(ge=1)] = Field(
        default=100, description="Most connections open to B (to each B, with several) at once."
    )
    max_keepalive_connections: Annotated[int, Field(ge=0)] = Field(
        default=100, description="Most idle connections kept open to B (to each B, with several)."
    )
    keepalive_expiry: Seconds = Field(
        default=4.0,
        description="Seconds an idle connection to B is kept; below uvicorn's 5 s keep-alive.",
    )
    transport: Literal["fast", "httpx"] = Field(
        default="fast",
        description="What carries A's HTTP requests to B: A's own pooled HTTP/1.1 transport, "
        "or httpx's (see README, Speed).",
    )
    max_body_bytes: Annotated[int, Field(ge=1)] = Field(
        default=1024 * 1024, description="Largest request body A reads; a larger one is 413."
    )
    ws_max_message_bytes: Annotated[int, Field(ge=1)] = Field(
        default=1024 * 1024,
        description="Largest WebSocket message relayed either way; a larger one closes with 1009.",
    )
    ws_ping_interval: Seconds | None = Field(
        default=20.0, description="Seconds between pings A sends B on a relayed WebSocket."
    )
    ws_ping_timeout: Seconds | None = Field(
        default=20.0, description="Seconds A waits for B's pong before closing with 1011."
    )
    ws_send_timeout: Seconds = Field(
        default=10.0,
        description="Seconds a client may leave a relayed message unread before it is closed.",
    )
    max_header_count: Annotated[int, Field(ge=1)] = Field(
        default=100, description="Most header fields in a request head; more is 431."
    )
    max_header_line_bytes: Annotated[int, Field(ge=64)] = Field(
        default=8 * 1024,
        description="Longest header line (name, value, `: `, CRLF); longer is 431, "
        "and a request target longer than this is 414.",
    )
    max_head_bytes: Annotated[int, Field(ge=256)] = Field(
        default=64 * 1024,
        description="Largest request head (request line and header fields); larger is 431.",
    )
    header_timeout_seconds: Seconds = Field(
        default=10.0,
        description="Seconds a client has to send a whole request head, from the connection's "
        "start or the request's first byte; then 408 and the connection is closed.",
    )
    idle_timeout_seconds: Seconds = Field(
        default=5.0,
        description="Seconds a kept-alive client connection may wait idle for its next request.",
    )
    max_client_connections: Annotated[int, Field(ge=1)] = Field(
        default=16384,
        description="Most client connections open at once (lowered to what the open file "
        "limit allows); past it an idle one is closed, else the new one gets 503.",
    )
    max_ws_sessions: Annotated[int, Field(ge=1)] = Field(
        default=10_000,
        description="Most WebSocket sessions A relays at once, apart from the HTTP pool; "
        "past it a handshake gets 503.",
    )
    allowed_origins: list[str] = Field(
        default=["http://localhost:8001", "http://127.0.0.1:8001"],
        description="Origins a browser may open WebSockets from (JSON list; `*` allows any).",
    )

    @field_validator("service_b_url")
    @classmethod
    def _each_b_is_a_url(cls, value: str) -> str:
        """Refuse a list with an empty entry, or with an entry that is not an http(s) URL."""
        if "," not in value:
            return value  # one B: taken as it is, as before there could be several
        for url in value.split(","):
            parsed = httpx.URL(url.strip())
            if parsed.scheme not in {"http", "https"} or not parsed.host:
                raise ValueError(f"{url.strip()!r} is not an http(s) URL of a B")
        return value

    @property
    def service_b_urls(self) -> tuple[str, ...]:
        """Give each B's base URL, in the order given."""
        return tuple(url.strip() for url in self.service_b_url.split(","))

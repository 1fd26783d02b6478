"""The fan-out across Bs: broadcast messages and item pushes through Redis pub/sub (coredis).

When `SERVICE_B_REDIS_URL` is set, a topic made by `RedisFanout.topic` publishes each text to
the Redis channel `<SERVICE_B_REDIS_CHANNEL_PREFIX>:<topic>`, and every B subscribed to it,
this one included, hands what arrives to its own subscribers through `Topic.deliver`. The
per-reader rules stay those of `service_b.topics`: each WebSocket client has its own bounded
queue in its own B, so a stalled reader is closed with 1013 by its B and nobody else notices.

- One subscriber connection per B, whatever its number of clients; publishing uses the
  client's pool. coredis is anyio-native, so this runs on asyncio and on trio alike (the
  in-process fan-out tests run on both, against a real redis-server).
- Each published text carries this B's instance id and the sender's subscription key
  (`<instance> <key> <text>`); a B that receives its own instance id leaves that subscription
  out, so a sender never gets its own message back, on its B or any other.
- An item push is published once the store's commit has returned (the stores call
  `publish` after their write), so no B announces a change that was not committed.
- Redis lost: the subscriber reconnects by itself, with a backoff from 0.1 s doubling up to
  `SERVICE_B_REDIS_RECONNECT_MAX_SECONDS`; until it is back, `connected` is false (`GET
  /status` says `degraded`) and each text goes to this B's own clients only. What other Bs
  published meanwhile is lost for this B's clients, and what this B published is lost for
  theirs: Redis pub/sub keeps nothing for a subscriber that is away.
- A publish waits at most `SERVICE_B_REDIS_TIMEOUT_SECONDS`, is never retried (a retry could
  deliver a message twice), and one that fails goes to this B's own clients instead.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel
import coredis
from coredis.exceptions import RedisError
from coredis.response.types import PubSubMessage
from coredis.retry import NoRetryPolicy

from service_b.settings import Settings
from service_b.topics import Topic

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The first pause before reconnecting to Redis; each failed attempt doubles it.
FIRST_BACKOFF_SECONDS = 0.1
#: A sender key that no subscription has (`Topic` keys start at 1).
NO_SENDER = 0


#: The memory streams a coredis connection makes when it is made, and closes only once its
#: socket is open: a connection that fails to connect (Redis down) leaves them unclosed.
_CONNECTION_BUFFERS = (
    "_write_buffer_in",
    "_write_buffer_out",
    "_push_message_buffer_in",
    "_push_message_buffer_out",
    "_streamed_message_buffer_in",
    "_streamed_message_buffer_out",
)


def _closing_buffers_on_failure(connection_class: type[Any]) -> type[Any]:
    """Give a subclass of a coredis connection class that cleans up after a failed connect.

    coredis 6.9 leaves a connection's six memory streams unclosed when its socket cannot be
    opened, so each attempt to reconnect to a Redis that is down ends with ResourceWarnings
    (errors under the tests' warning filter). Nothing else changes.
    """

    class ClosingBuffersOnFailure(connection_class):  # type: ignore[misc]
        async def _connect(self) -> Any:
            try:
                return await super()._connect()
            except BaseException:
                for name in _CONNECTION_BUFFERS:
                    stream = getattr(self, name, None)
                    if stream is not None:
                        stream.close()
                raise

    return ClosingBuffersOnFailure


def _leaves(exc: BaseException) -> str:
    """Say what went wrong, from the innermost errors of (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_leaves(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


class RedisFanout:
    """Topics whose texts travel through Redis pub/sub, to the clients of every B on it."""

    def __init__(
        self,
        client: coredis.Redis[str],
        settings: Settings,
        group: anyio.abc.TaskGroup,
    ) -> None:
        """Fan out through `client`; the subscriber will run in `group` (see `start`)."""
        self._client = client
        self._group = group
        self._prefix = settings.redis_channel_prefix
        self._timeout = settings.redis_timeout_seconds
        self._max_backoff = settings.redis_reconnect_max_seconds
        #: Tells this B's own messages apart from other Bs' when they come back from Redis.
        self.instance = uuid.uuid4().hex
        self._topics: dict[str, Topic[Any]] = {}
        self._connected = False

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[RedisFanout]:
        """Make a fan-out on `settings.redis_url`; stop its subscriber and connections on exit."""
        assert settings.redis_url is not None  # noqa: S101 - the caller checked
        client: coredis.Redis[str] = coredis.Redis.from_url(
            settings.redis_url.get_secret_value(),
            decode_responses=True,
            retry_policy=NoRetryPolicy(),
            connect_timeout=settings.redis_timeout_seconds,
        )
        pool = client.connection_pool
        pool.connection_class = _closing_buffers_on_failure(pool.connection_class)
        async with client, anyio.create_task_group() as group:
            yield cls(client, settings, group)
            group.cancel_scope.cancel()

    @property
    def connected(self) -> bool:
        """Tell whether the subscriber is subscribed now (else: `GET /status` is degraded)."""
        return self._connected

    def channel(self, name: str) -> str:
        """Give the Redis channel of the topic called `name`."""
        return f"{self._prefix}:{name}"

    def topic(
        self,
        name: str,
        max_messages: int,
        max_bytes: int,
        render: Callable[[T], str] = str,
    ) -> Topic[T]:
        """Make a topic called `name` that fans out through Redis (before `start`)."""
        made = Topic[T](max_messages, max_bytes, render, name=name, fanout=self)
        self._topics[self.channel(name)] = made
        return made

    async def start(self) -> None:
        """Start the subscriber; return once its first attempt to subscribe succeeded or failed.

        B starts either way: without Redis it serves its own clients, says `degraded`, and
        keeps trying.
        """
        await self._group.start(self._subscribe_forever)

    async def send(self, topic: Topic[Any], text: str, sender: int | None) -> None:
        """Publish `text` for every B's clients; without Redis, for this B's clients only."""
        if self._connected:
            payload = f"{self.instance} {sender or NO_SENDER} {text}"
            try:
                with anyio.fail_after(self._timeout):
                    await self._client.publish(self.channel(topic.name), payload)
            except (RedisError, TimeoutError, OSError) as exc:
                logger.warning(
                    "could not publish to Redis (%s); only this B's clients get the message",
                    _leaves(exc),
                )
            else:
                return
        topic.deliver(text, sender)

    def _receive(self, message: PubSubMessage) -> None:
        topic = self._topics.get(str(message["channel"]))
        data = message["data"]
        if topic is None or not isinstance(data, str):
            return
        instance, _, rest = data.partition(" ")
        key, separator, text = rest.partition(" ")
        if not separator or not key.isdigit():
            logger.warning("ignoring a message on %s not sent by a B", message["channel"])
            return
        topic.deliver(text, int(key) if instance == self.instance else None)

    async def _subscribe_forever(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        backoff = FIRST_BACKOFF_SECONDS
        started = False
        while True:
            try:
                async with self._client.pubsub(
                    channels=list(self._topics),
                    ignore_subscribe_messages=True,
                    retry_policy=None,  # reconnecting is done here, where it can be seen
                    subscription_timeout=self._timeout,
                ) as pubsub:
                    self._connected = True
                    backoff = FIRST_BACKOFF_SECONDS
                    logger.info("subscribed to Redis channels %s", ", ".join(self._topics))
                    if not started:
                        task_status.started()
                        started = True
                    async for message in pubsub:
                        self._receive(message)
                        # As `Topic.publish` does: subscribers' writers drain between messages.
                        await anyio.lowlevel.checkpoint()
                reason = "the subscription ended"
            except Exception as exc:  # noqa: BLE001 - whatever it was, reconnect after a pause
                reason = _leaves(exc)
            self._connected = False
            logger.warning(
                "no Redis subscription (%s); broadcasts and item pushes reach this B's clients "
                "only; retrying in %.1f s",
                reason,
                backoff,
            )
            if not started:
                task_status.started()
                started = True
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

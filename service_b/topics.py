"""Fan-out of messages to WebSocket subscribers, each behind a queue bounded in messages and bytes.

The rules (issue 11, measured on the former version, which published without yielding and
bounded its queues in messages only: a sender's burst of 80 closed every listener):

- Publishing yields to the event loop after each message, so subscribers' writers drain
  their queues while a sender bursts: a subscriber that keeps up never holds more than a
  few messages, whatever the burst's size.
- A publish never waits for a subscriber: a full queue (too many messages, or too many
  bytes) marks that subscriber as overflowed, with the reason, and the others go on.
- Each message is rendered to its text once per publish, not once per subscriber, and
  every subscriber queues the same text.

Where a published text goes is the topic's `Fanout`: with none (the default) it goes
straight to this process's subscribers; `service_b.fanout_redis.RedisFanout` sends it
through Redis pub/sub, and hands what arrives from there, from any B, to `Topic.deliver`.
Either way subscribers see the same `Topic`, and the same per-reader rules apply to them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

T = TypeVar("T")

#: Bytes a subscriber may have queued when no bound is given.
DEFAULT_MAX_BYTES = 1024 * 1024


def utf8_length(text: str) -> int:
    """Give the length of `text` in UTF-8, without encoding it when it is ASCII."""
    return len(text) if text.isascii() else len(text.encode())


@dataclass(frozen=True, slots=True)
class Queued:
    """One message waiting for a subscriber: its text, size in bytes, and when it was queued."""

    text: str
    size: int
    queued_at: float


class Subscription:
    """One subscriber's queue, bounded in messages and in bytes, and why it overflowed.

    A message always fits into an empty queue, whatever its size: a subscriber that keeps
    up is never refused a message for its size alone.
    """

    def __init__(self, max_messages: int, max_bytes: int, key: int = 0) -> None:
        """Make an empty queue that holds up to `max_messages` messages and `max_bytes` bytes.

        `key` tells the subscription apart from the others of its topic (`Topic.deliver`).
        """
        self.key = key
        self._send: MemoryObjectSendStream[Queued]
        self._receive: MemoryObjectReceiveStream[Queued]
        self._send, self._receive = anyio.create_memory_object_stream[Queued](max_messages)
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._bytes = 0
        self.overflowed = anyio.Event()
        self.overflow_reason = ""

    def _overflow(self, reason: str) -> None:
        self.overflow_reason = reason
        self.overflowed.set()

    def offer(self, message: Queued) -> None:
        """Queue a message without waiting; a full queue marks the subscriber as overflowed."""
        if self.overflowed.is_set():
            return
        if self._bytes and self._bytes + message.size > self._max_bytes:
            self._overflow(f"more than {self._max_bytes} bytes queued for this client; reconnect")
            return
        try:
            self._send.send_nowait(message)
        except anyio.WouldBlock:
            self._overflow(
                f"more than {self._max_messages} messages queued for this client; reconnect"
            )
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # The subscriber is leaving; nothing is owed to it any more.
            pass
        else:
            self._bytes += message.size

    async def next(self) -> Queued:
        """Wait for the next queued message."""
        message = await self._receive.receive()
        self._bytes -= message.size
        return message

    def next_nowait(self) -> Queued | None:
        """Give the next queued message, or None when the queue is empty."""
        try:
            message = self._receive.receive_nowait()
        except anyio.WouldBlock:
            return None
        self._bytes -= message.size
        return message

    def close(self) -> None:
        """Release both ends of the queue."""
        self._send.close()
        self._receive.close()


class Fanout(Protocol):
    """Where a topic's published texts go, so that its subscribers (and maybe others') get them."""

    async def send(self, topic: Topic[Any], text: str, sender: int | None) -> None:
        """Fan `text` out; the subscription of `topic` keyed `sender`, if any, must not get it."""
        ...


class Topic(Generic[T]):
    """A set of subscriptions that each published message is offered to, without ever waiting."""

    def __init__(
        self,
        max_messages: int,
        max_bytes: int = DEFAULT_MAX_BYTES,
        render: Callable[[T], str] = str,
        *,
        name: str = "topic",
        fanout: Fanout | None = None,
    ) -> None:
        """Make a topic whose subscribers each queue up to `max_messages` and `max_bytes`.

        `render` gives the text subscribers are sent for a published message. `fanout`
        carries published texts (`name` tells it which topic); None: to this process's
        subscribers only.
        """
        self.name = name
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._render = render
        self._fanout = fanout
        self._keys = itertools.count(1)
        self._subscriptions: dict[int, Subscription] = {}

    def __len__(self) -> int:
        """Give the number of current subscribers."""
        return len(self._subscriptions)

    @contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        """Subscribe for the duration of the block; leaving it removes every trace."""
        subscription = Subscription(self._max_messages, self._max_bytes, next(self._keys))
        self._subscriptions[subscription.key] = subscription
        try:
            yield subscription
        finally:
            del self._subscriptions[subscription.key]
            subscription.close()

    async def publish(self, message: T, *, exclude: Subscription | None = None) -> None:
        """Offer `message` to every subscriber but `exclude`, then let their writers run.

        A slow subscriber never delays the rest: nothing here waits for any of them. The
        yield at the end is what lets readers keep up with a sender's burst.
        """
        sender = None if exclude is None else exclude.key
        if self._fanout is not None:
            await self._fanout.send(self, self._render(message), sender)
        elif len(self._subscriptions) > (exclude is not None):
            self.deliver(self._render(message), sender)
        await anyio.lowlevel.checkpoint()

    def deliver(self, text: str, sender: int | None = None) -> None:
        """Queue `text` for every subscriber of this process but the one keyed `sender`.

        This never waits: a full queue marks its subscriber as overflowed.
        """
        if not self._subscriptions:
            return
        queued = Queued(text, utf8_length(text), anyio.current_time())
        for key, subscription in self._subscriptions.items():
            if key != sender:
                subscription.offer(queued)

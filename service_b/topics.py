"""Fan-out of messages to WebSocket subscribers, each behind a bounded queue."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

T = TypeVar("T")


class Subscription(Generic[T]):
    """One subscriber's bounded queue of messages, and the flag raised when it overflowed."""

    def __init__(self, queue_size: int) -> None:
        """Make an empty queue that holds up to `queue_size` messages."""
        self._send: MemoryObjectSendStream[T]
        self.messages: MemoryObjectReceiveStream[T]
        self._send, self.messages = anyio.create_memory_object_stream[T](queue_size)
        self.overflowed = anyio.Event()

    def offer(self, message: T) -> None:
        """Queue a message without waiting; a full queue marks the subscriber as overflowed."""
        if self.overflowed.is_set():
            return
        try:
            self._send.send_nowait(message)
        except anyio.WouldBlock:
            self.overflowed.set()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # The subscriber is leaving; nothing is owed to it any more.
            pass

    def close(self) -> None:
        """Release both ends of the queue."""
        self._send.close()
        self.messages.close()


class Topic(Generic[T]):
    """A set of subscriptions that each published message is offered to, without ever waiting."""

    def __init__(self, queue_size: int) -> None:
        """Make a topic whose subscribers each queue up to `queue_size` messages."""
        self._queue_size = queue_size
        self._subscriptions: set[Subscription[T]] = set()

    def __len__(self) -> int:
        """Give the number of current subscribers."""
        return len(self._subscriptions)

    @contextmanager
    def subscribe(self) -> Iterator[Subscription[T]]:
        """Subscribe for the duration of the block; leaving it removes every trace."""
        subscription = Subscription[T](self._queue_size)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
            subscription.close()

    def publish(self, message: T, *, exclude: Subscription[T] | None = None) -> None:
        """Offer `message` to every subscriber but `exclude`; a slow one never delays the rest."""
        for subscription in list(self._subscriptions):
            if subscription is not exclude:
                subscription.offer(message)

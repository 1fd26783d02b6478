"""A's WebSocket connections: uvicorn's websockets (sans-I/O) protocol, with delivery checks.

Why: A must close a client that stops reading with 1013 within `SERVICE_A_WS_SEND_TIMEOUT`
of its first unread message (issue 11). The relay (`service_a/relay.py`) bounds each send
to its client with that timeout, but through ASGI a send completes once the frame is
handed to the kernel, and the socket buffers of a client that stopped reading absorb
megabytes first. B checks its own clients with pings, but through A that check never
reaches A's clients: A reads B's messages as they come and writes them into its client's
socket buffers, so B sees a reader that keeps up. Measured with `nox -s stress -- -k
fanout_stalled_through_a` (a sender paced by a listener that reads, a listener of A that
never calls `recv`, 200-byte incompressible messages, default settings, so a 10 s send
timeout on both services): without this protocol, the stalled client was closed with 1013
only at +20 s and +30 s (two runs), by B, once A's own send to it finally blocked and A
stopped reading B; with it, A closes it with 1013 at +10.0 s.

How: WebSocket control frames are ordered with data frames, and a client's WebSocket stack
answers a ping only once it has read everything sent before it. Both libraries A's clients
are likely to use stop reading the socket when their own message queue is full
(websockets' `max_queue` pauses the transport; httpx-ws's reader waits on its bounded
queue), and so stop answering pings. So once a data frame A sent is half the send timeout
old and no probe of A's is in flight, this protocol sends a ping of its own; its pong
acknowledges every frame sent before it. A data frame not acknowledged within the send
timeout of being written closes the connection with 1013, "the client is not reading;
reconnect", whatever the message size. A pong to uvicorn's keep-alive ping acknowledges
what was sent before that ping too, and a pong to a later probe answers the keep-alive ping
(RFC 6455 lets a client answer only the latest of several pings). The relay is told by a
`websocket.disconnect` with 1013 (it passes the close on to B); its later sends end as a
disconnect, not an error. After the close frame A goes on reading, and closes the socket
when the client's close frame comes. B's version closes it at once; here that lost data:
the client saw 1006 after 5,756 of 9,900 messages (200-byte messages, the probe above),
and 13,846 of 13,900 then the 1013 once A went on reading. The likely cause: a client
that reads its backlog after the close answers the probe then, and a socket closed with
that pong unread, or receiving it, is reset by the kernel, which drops what it still
held. Each send timeout after the close, a client that took none of A's own buffer is cut
off (abort), and with the buffer empty the socket is closed, the kernel delivering the
rest.

Why the probe waits: httpx-ws (wsproto) fails with `LocalProtocolError` when a ping arrives
after it sent its close frame (it tries to answer it). Measured on B: with a probe right
after each burst, a test client that read a push and closed at once failed 5 times out of
5; a waiting probe is only in flight while data has gone unread that long, as rarely as
uvicorn's own keep-alive ping is. A reader that keeps up is never closed by this and costs
at most one ping and pong per half send timeout (5 s by default), however many messages.
uvicorn's own keep-alive pings go on unchanged.

uvicorn (0.55) picks this same sans-I/O protocol for `ws="auto"` when websockets is
installed; A names it explicitly (`python -m service_a` passes the class as `ws=`), so the
check cannot silently drop out. In-process (ASGI transports, TestClient) there is no socket
and no kernel buffer: a send that is not taken blocks, and the relay's send timeout covers
it.

This file has a twin in `service_b/ws_protocol.py`: the services share no code (only the
wire).
"""

from __future__ import annotations

import itertools
import logging
import struct
from asyncio import TimerHandle
from typing import Any, ClassVar

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.utils import ClientDisconnected, get_path_with_query_string
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame

logger = logging.getLogger(__name__)

#: The close code and reason for a client that does not take what A sends.
NOT_READING_CODE = 1013
NOT_READING_REASON = "the client is not reading; reconnect"
#: Delivery probes' payloads start with this; uvicorn's keep-alive pings carry 4 random bytes.
PROBE_PREFIX = b"delivered?"
#: How long after the oldest unprobed data frame a probe is sent, as a part of the send
#: timeout: the client has the rest of it to answer.
PROBE_DELAY_FRACTION = 0.5


def delivery_checked_protocol(send_timeout: float) -> type[DeliveryCheckedProtocol]:
    """Give the WebSocket protocol class for uvicorn (`ws=`) that closes stalled readers."""
    namespace = {"send_timeout": send_timeout}
    return type("DeliveryCheckedProtocol", (DeliveryCheckedProtocol,), namespace)


class DeliveryCheckedProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol that checks data frames are read (see above)."""

    send_timeout: ClassVar[float]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Start with nothing sent, so nothing to acknowledge."""
        super().__init__(*args, **kwargs)
        self._pings = itertools.count()
        #: The probe in flight (its payload and number), and when the first frame it covers
        #: was written.
        self._probe: bytes | None = None
        self._probe_number = -1
        self._probed_since: float | None = None
        #: When the first data frame written since the last probe was sent was written.
        self._unprobed_since: float | None = None
        self._probe_timer: TimerHandle | None = None
        self._keepalive_number = -1
        self._deadline: TimerHandle | None = None
        self._stalled = False

    async def send(self, message: ASGISendEvent) -> None:
        """Send as uvicorn does; count a data frame as unacknowledged until a pong says so."""
        if self._stalled:
            raise ClientDisconnected  # A closed it already: the app sees a disconnect
        await super().send(message)
        if message["type"] == "websocket.send" and not self._closing():
            self._written()

    def _closing(self) -> bool:
        return self.close_sent or self.disconnected or self.transport.is_closing()

    def _written(self) -> None:
        if self._unprobed_since is None:
            self._unprobed_since = self.loop.time()
        if self._probe is None:
            self._schedule_probe()
        if self._deadline is None:
            self._arm_deadline()

    def _schedule_probe(self) -> None:
        """Probe once the oldest unprobed frame is half the send timeout old.

        One probe then acknowledges everything written until then, and a short exchange
        that the client ends (a request, an answer, a close) sees no ping at all.
        """
        if self._probe_timer is None and self._unprobed_since is not None:
            due = self._unprobed_since + self.send_timeout * PROBE_DELAY_FRACTION
            self._probe_timer = self.loop.call_at(due, self._send_probe)

    def _send_probe(self) -> None:
        self._probe_timer = None
        if self._probe is not None or self._unprobed_since is None or self._closing():
            return
        self._probe_number = next(self._pings)
        self._probe = PROBE_PREFIX + struct.pack("!Q", self._probe_number)
        self._probed_since, self._unprobed_since = self._unprobed_since, None
        self.conn.send_ping(self._probe)
        self.transport.write(b"".join(self.conn.data_to_send()))

    def unacknowledged_since(self) -> float | None:
        """Give when the oldest data frame not yet acknowledged was written (loop time)."""
        return self._probed_since if self._probed_since is not None else self._unprobed_since

    def _arm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        oldest = self.unacknowledged_since()
        if oldest is not None:
            self._deadline = self.loop.call_at(oldest + self.send_timeout, self._not_reading)

    def _acknowledged(self) -> None:
        self._probe = None
        self._probed_since = None
        self._schedule_probe()
        self._arm_deadline()

    def send_keepalive_ping(self) -> None:
        """Send uvicorn's keep-alive ping, numbered in order with the probes."""
        self._keepalive_number = next(self._pings)
        super().send_keepalive_ping()

    def handle_pong(self, event: Frame) -> None:
        """Take a pong as answering its ping and every ping sent before it."""
        if self._stalled:
            return  # the answer to a probe, read after A's close frame: nothing to check
        data = bytes(event.data)
        keepalive = self.pending_ping_payload
        if self._probe is not None and data == self._probe:
            if keepalive is not None and self._keepalive_number < self._probe_number:
                super().handle_pong(Frame(event.opcode, keepalive))
            self._acknowledged()
            return
        super().handle_pong(event)
        if (
            keepalive is not None
            and data == keepalive
            and self._probe is not None
            and self._probe_number < self._keepalive_number
        ):
            self._acknowledged()

    def _not_reading(self) -> None:
        self._deadline = None
        if self._closing():
            return
        path = get_path_with_query_string(self.scope)
        logger.info(
            "closing WebSocket %s with %d: %s (nothing acknowledged for %s s)",
            path,
            NOT_READING_CODE,
            NOT_READING_REASON,
            self.send_timeout,
        )
        self._stalled = True
        self.stop_keepalive()
        self.queue.put_nowait(
            {"type": "websocket.disconnect", "code": NOT_READING_CODE, "reason": NOT_READING_REASON}
        )
        # A closing handshake, not `fail`: A goes on reading until the client answers.
        self.conn.send_close(NOT_READING_CODE, NOT_READING_REASON)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        # uvicorn closes the transport when the client's close frame comes, and, with a
        # close timer set, not when the app returns.
        self.close_timer = self.loop.call_later(
            self.send_timeout, self._check_progress, self.transport.get_write_buffer_size()
        )

    def _check_progress(self, buffered_before: int) -> None:
        """Close, or cut off, a connection whose client did not answer A's close frame.

        A keeps reading until the client's close frame comes (see the module docstring):
        closing the socket with data unread, such as the pong to a probe that the client
        sends once it reads its backlog, would reset the connection and drop what the
        kernel still holds for it. Each send timeout: a client that took some of A's own
        buffer gets another; one that took nothing is cut off (abort); with A's buffer
        empty, the socket is closed and the kernel delivers the rest.
        """
        self.close_timer = None
        if self.disconnected:
            return
        buffered = self.transport.get_write_buffer_size()
        if buffered == 0:
            self.transport.close()
        elif buffered >= buffered_before:
            logger.info(
                "WebSocket client took nothing for %s s after the close: cut off", self.send_timeout
            )
            self.transport.abort()
        else:
            self.close_timer = self.loop.call_later(
                self.send_timeout, self._check_progress, buffered
            )

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the delivery checks too."""
        for timer in (self._deadline, self._probe_timer):
            if timer is not None:
                timer.cancel()
        self._deadline = self._probe_timer = None
        super().connection_lost(exc)

"""OKX's login rules on `/ws/v5/private`: the window, one use per signature, limits, passphrases.

B runs in-process on a clock the tests set (`create_app(settings, clock=...)`), so a login
"31 s ago" or "after the bucket refilled" needs no sleeping. Each client can be given its
own address, as B sees it in the ASGI scope.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from service_b import Settings, create_app
from service_b.login_guard import Claim, FailureLimiter, ReplayCache
from service_b.login_message import login_message
from service_b.settings import ApiKeyCredentials
from tests.inprocess import B_URL, lifespan, serve_in_process
from tests.service_b.ws_scripts import LOGGED_IN, LOGIN_FAILED, SUBSCRIBE, SUBSCRIBED
from tests.ws import InProcessWebSocketTransport, connect_ws

TOO_FREQUENT = {"event": "error", "code": "60014", "msg": "Requests too frequent"}
TOO_FREQUENT_CLOSE = (1008, "too many failed logins; try again later")
WRONG_PASSPHRASE = {"event": "error", "code": "60024", "msg": "Wrong passphrase"}
KEYS = {
    "abc": SecretStr("def"),
    "other": SecretStr("other-secret"),
    "pp": ApiKeyCredentials(secret=SecretStr("ghi"), passphrase=SecretStr("open sesame")),
}
SECRETS = {"abc": "def", "other": "other-secret", "pp": "ghi"}


class Clock:
    """A Unix clock that moves only when told; it starts at the real time."""

    def __init__(self) -> None:
        """Start at the current time, to the second."""
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        """Give the time."""
        return self.now


Connect = Callable[..., AbstractAsyncContextManager[AsyncWebSocketSession]]


def _from_address(app: ASGIApp, host: str) -> ASGIApp:
    async def with_client(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "client": (host, 40000)}, receive, send)

    return with_client


@pytest.fixture
def clock() -> Clock:
    """Give the clock B checks logins against."""
    return Clock()


@pytest.fixture
async def connect(clock: Clock) -> AsyncIterator[Connect]:
    """Give `connect(address="10.0.0.1")`: a session on `/ws/v5/private` of one B."""
    settings = Settings(database_path=":memory:", api_keys=KEYS)
    async with lifespan(create_app(settings, clock=clock)) as manager:

        @asynccontextmanager
        async def session(address: str = "10.0.0.1") -> AsyncIterator[AsyncWebSocketSession]:
            transport = InProcessWebSocketTransport(_from_address(manager.app, address))
            async with (
                httpx.AsyncClient(transport=transport, base_url="http://service-b") as client,
                connect_ws("/ws/v5/private", client) as ws,
            ):
                yield ws

        yield session


def _login(clock: Clock, *, at: float = 0.0, key: str = "abc", **changes: Any) -> str:
    """Sign a login for `key` stamped `at` seconds from the clock's now."""
    secret = changes.pop("secret", SECRETS[key])
    passphrase = changes.pop("passphrase", "p")
    return login_message(key, secret, passphrase, f"{clock.now + at:.6f}")


async def _answer(ws: AsyncWebSocketSession, text: str) -> dict[str, Any]:
    await ws.send_text(text)
    answer: dict[str, Any] = json.loads(await ws.receive_text(5))
    return answer


async def _closed(ws: AsyncWebSocketSession) -> tuple[int, str]:
    with pytest.raises(WebSocketDisconnect) as closed:
        await ws.receive_text(5)
    return closed.value.code, closed.value.reason


async def _accepted(connect: Connect, text: str, address: str = "10.0.0.1") -> None:
    async with connect(address) as ws:
        assert LOGGED_IN == await _answer(ws, text)
        assert SUBSCRIBED == await _answer(ws, SUBSCRIBE)


async def _refused(
    connect: Connect,
    text: str,
    answer: dict[str, Any] = LOGIN_FAILED,
    close: tuple[int, str] = (1008, "authentication failed"),
    address: str = "10.0.0.1",
) -> None:
    async with connect(address) as ws:
        assert answer == await _answer(ws, text)
        assert close == await _closed(ws)


# One use per signature


@pytest.mark.anyio
async def test_replay_on_a_second_connection_is_refused(connect: Connect, clock: Clock) -> None:
    """A captured login sent again on a new connection 5 s later is refused with 1008."""
    login = _login(clock)
    await _accepted(connect, login)
    clock.now += 5
    await _refused(connect, login)


@pytest.mark.anyio
async def test_replay_from_another_address_is_refused(connect: Connect, clock: Clock) -> None:
    """A captured login is refused whichever address replays it."""
    login = _login(clock)
    await _accepted(connect, login, address="10.0.0.1")
    await _refused(connect, login, address="10.9.9.9")


@pytest.mark.anyio
async def test_replay_on_two_concurrent_sessions_logs_in_one(
    connect: Connect, clock: Clock
) -> None:
    """One login sent on two sessions at once logs in exactly one; the other closes 1008."""
    login = _login(clock)
    async with connect() as first, connect() as second:
        async with anyio.create_task_group() as group:
            group.start_soon(first.send_text, login)
            group.start_soon(second.send_text, login)
        answers = [json.loads(await ws.receive_text(5)) for ws in (first, second)]
        assert sorted([LOGGED_IN, LOGIN_FAILED], key=str) == sorted(answers, key=str)
        loser = second if answers[0] == LOGGED_IN else first
        assert (1008, "authentication failed") == await _closed(loser)


@pytest.mark.anyio
async def test_a_new_signature_of_the_same_key_is_accepted(connect: Connect, clock: Clock) -> None:
    """Only the signature is used up: the same key logs in again with a fresh timestamp."""
    await _accepted(connect, _login(clock))
    clock.now += 1
    await _accepted(connect, _login(clock))


# The acceptance window


@pytest.mark.anyio
async def test_login_31_s_old_is_refused(connect: Connect, clock: Clock) -> None:
    """OKX's rule: a login expires 30 s after its timestamp."""
    await _refused(connect, _login(clock, at=-31))


@pytest.mark.anyio
async def test_login_30_s_old_is_accepted(connect: Connect, clock: Clock) -> None:
    """A login is accepted up to 30 s after its timestamp."""
    await _accepted(connect, _login(clock, at=-30))


@pytest.mark.anyio
async def test_login_6_s_ahead_is_refused(connect: Connect, clock: Clock) -> None:
    """A timestamp in B's future beyond the 5 s clock-skew allowance is refused."""
    await _refused(connect, _login(clock, at=6))


@pytest.mark.anyio
async def test_login_4_s_ahead_is_accepted(connect: Connect, clock: Clock) -> None:
    """A timestamp up to 5 s in B's future (a client's fast clock) is accepted."""
    await _accepted(connect, _login(clock, at=4))


@pytest.mark.anyio
async def test_login_signed_29_s_ahead_is_refused_when_it_comes_due(
    connect: Connect, clock: Clock
) -> None:
    """A login signed 29 s ahead is refused now, and good only once B's clock is near it."""
    login = _login(clock, at=29)
    await _refused(connect, login)
    clock.now += 29
    await _accepted(connect, login)


# Failed logins are rate limited


@pytest.mark.anyio
async def test_the_11th_rapid_failure_is_refused_too_frequent(
    connect: Connect, clock: Clock
) -> None:
    """Ten failures at once from one address are checked; the 11th is answered 60014, 1008."""
    for _ in range(10):
        await _refused(connect, _login(clock, secret="wrong"))
    await _refused(connect, _login(clock, secret="wrong"), TOO_FREQUENT, TOO_FREQUENT_CLOSE)
    # Over its allowance, the address's logins are not checked at all, even a correct one.
    await _refused(connect, _login(clock), TOO_FREQUENT, TOO_FREQUENT_CLOSE)


@pytest.mark.anyio
async def test_others_failures_never_refuse_a_correct_login(connect: Connect, clock: Clock) -> None:
    """While one address is refused 60014, correct logins from others succeed, any key."""
    for _ in range(10):
        await _refused(connect, _login(clock, secret="wrong"), address="10.6.6.6")
    await _refused(connect, _login(clock), TOO_FREQUENT, TOO_FREQUENT_CLOSE, address="10.6.6.6")
    await _accepted(connect, _login(clock, key="other"), address="10.0.0.2")
    await _accepted(connect, _login(clock, key="abc"), address="10.0.0.3")


@pytest.mark.anyio
async def test_the_address_may_try_again_as_its_bucket_refills(
    connect: Connect, clock: Clock
) -> None:
    """Past the burst, an address gets 5 checked logins a second: one per 0.2 s."""
    for _ in range(10):
        await _refused(connect, _login(clock, secret="wrong"))
    await _refused(connect, _login(clock), TOO_FREQUENT, TOO_FREQUENT_CLOSE)
    clock.now += 0.2
    await _accepted(connect, _login(clock))


@pytest.mark.anyio
async def test_a_key_failing_from_many_addresses_is_answered_too_frequent(
    connect: Connect, clock: Clock
) -> None:
    """The 11th failure of one key, wherever it comes from, is answered 60014; its owner is not."""
    for number in range(10):
        await _refused(connect, _login(clock, secret="wrong"), address=f"10.1.0.{number}")
    await _refused(
        connect, _login(clock, secret="wrong"), TOO_FREQUENT, TOO_FREQUENT_CLOSE, address="10.1.1.1"
    )
    await _accepted(connect, _login(clock), address="10.1.1.2")


@pytest.mark.anyio
async def test_malformed_logins_count_as_failures(connect: Connect) -> None:
    """A login request B cannot read is a failure of its address like any other."""
    garbage = json.dumps({"op": "login", "args": [1]})
    for _ in range(10):
        await _refused(connect, garbage)
    await _refused(connect, garbage, TOO_FREQUENT, TOO_FREQUENT_CLOSE)


# A passphrase per key


@pytest.mark.anyio
async def test_right_passphrase_is_accepted(connect: Connect, clock: Clock) -> None:
    """A key configured with a passphrase logs in when the login carries it."""
    await _accepted(connect, _login(clock, key="pp", passphrase="open sesame"))


@pytest.mark.anyio
async def test_wrong_passphrase_is_refused_60024(connect: Connect, clock: Clock) -> None:
    """A right signature with the wrong passphrase is answered OKX's 60024, then 1008."""
    login = _login(clock, key="pp", passphrase="open sesame?")
    await _refused(connect, login, WRONG_PASSPHRASE, (1008, "wrong passphrase"))


@pytest.mark.anyio
async def test_a_bare_secret_checks_no_passphrase(connect: Connect, clock: Clock) -> None:
    """A key mapped to a plain secret logs in whatever passphrase the login carries."""
    await _accepted(connect, _login(clock, key="abc", passphrase="anything at all"))


def test_keys_with_passphrases_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """SERVICE_B_API_KEYS maps a key to a secret, or to a secret and a passphrase."""
    keys = '{"plain": "s1", "strict": {"secret": "s2", "passphrase": "p2"}}'
    monkeypatch.setenv("SERVICE_B_API_KEYS", keys)
    api_keys = Settings().api_keys
    assert SecretStr("s1") == api_keys["plain"]
    strict = api_keys["strict"]
    assert isinstance(strict, ApiKeyCredentials)
    assert ("s2", "p2") == (strict.secret.get_secret_value(), strict.passphrase.get_secret_value())


# Bounded memory


def test_replay_cache_forgets_a_signature_when_its_window_ends() -> None:
    """A signature is remembered until its login would be stale, then forgotten."""
    cache = ReplayCache(max_size=10)
    assert Claim.FIRST_USE == cache.claim("abc", "s1", until=130, now=100)
    assert Claim.REPLAYED == cache.claim("abc", "s1", until=130, now=130)
    assert Claim.FIRST_USE == cache.claim("abc", "s2", until=161, now=131)
    assert 1 == len(cache)


def test_full_replay_cache_refuses_rather_than_forgets() -> None:
    """A full cache refuses a new signature; it never forgets one still valid."""
    cache = ReplayCache(max_size=2)
    assert Claim.FIRST_USE == cache.claim("abc", "s1", until=130, now=100)
    assert Claim.FIRST_USE == cache.claim("abc", "s2", until=130, now=100)
    assert Claim.FULL == cache.claim("abc", "s3", until=130, now=100)
    assert Claim.REPLAYED == cache.claim("abc", "s1", until=130, now=101)


@pytest.mark.anyio
async def test_full_replay_cache_answers_too_frequent_1013(clock: Clock) -> None:
    """When every remembered login is still valid and the cache is full, B says try later."""
    settings = Settings(database_path=":memory:", api_keys=KEYS, login_replay_cache_size=1)
    async with serve_in_process(create_app(settings, clock=clock), base_url=B_URL) as client:
        async with connect_ws("/ws/v5/private", client) as ws:
            assert LOGGED_IN == await _answer(ws, _login(clock))
        async with connect_ws("/ws/v5/private", client) as ws:
            assert TOO_FREQUENT == await _answer(ws, _login(clock, at=-1))
            assert (1013, "too many logins at once; try again later") == await _closed(ws)


def test_failure_counts_are_forgotten_when_refilled_and_bounded() -> None:
    """A name's count ends when its bucket is full again; at most `max_entries` are held."""
    limiter = FailureLimiter(rate=5, burst=10, max_entries=3)
    for name in ("a", "b", "c", "d"):
        assert limiter.charge(name, now=100)
    assert 3 == len(limiter)
    assert limiter.charge("e", now=100.2)  # a..d each refilled their one token by now
    assert 1 == len(limiter)

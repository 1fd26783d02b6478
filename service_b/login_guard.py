"""What B decides about a login on `/ws/v5/private`, and what it remembers to decide it.

`LoginGuard.check` applies the rules (README, "The private endpoint") in order: the
failure allowance of the client address, the key, signature, window and passphrase
(`service_b.okx`), one use per signature, and the failure allowance of the API key.

The signatures used and the recent failures are plain in-memory structures owned by one
run of B (its lifespan creates the `LoginGuard`), read and changed without an `await` in
between, so a check and the update that follows it are atomic in the event loop: two
sessions sending the same signature at once cannot both pass. Memory is bounded: an entry
ends when its time does (a signature with its acceptance window, a failure count when its
bucket has refilled) and each table has a maximum size (settings).

They are written here rather than taken from a library: a replay cache is a dict and a
heap, a token bucket two floats, and the rate-limit libraries for ASGI count requests per
HTTP route, not failed logins inside a WebSocket session.
"""

from __future__ import annotations

import enum
import heapq
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from service_b.models import LoginArgs
from service_b.okx import Verdict, timestamp_seconds, verify_login
from service_b.settings import Settings

#: A clock giving Unix time in seconds; `time.time` unless a test injects its own.
Clock = Callable[[], float]


class Claim(enum.Enum):
    """What came of claiming a signature for a login."""

    FIRST_USE = "first use"
    REPLAYED = "replayed"
    FULL = "full"


class ReplayCache:
    """The signatures accepted whose login window is still open, each claimable once."""

    def __init__(self, max_size: int) -> None:
        """Remember at most `max_size` signatures at a time."""
        self._max_size = max_size
        self._until: dict[tuple[str, str], float] = {}
        self._expiries: list[tuple[float, tuple[str, str]]] = []

    def __len__(self) -> int:
        """Give the number of signatures remembered."""
        return len(self._until)

    def claim(self, api_key: str, signature: str, *, until: float, now: float) -> Claim:
        """Claim `signature` of `api_key` until `until`; tell whether it was used already.

        When the cache is full of signatures still valid, the login is refused (`FULL`)
        rather than an older signature forgotten, which would let it be replayed.
        """
        self._forget_expired(now)
        entry = (api_key, signature)
        if entry in self._until:
            return Claim.REPLAYED
        if len(self._until) >= self._max_size:
            return Claim.FULL
        self._until[entry] = until
        heapq.heappush(self._expiries, (until, entry))
        return Claim.FIRST_USE

    def _forget_expired(self, now: float) -> None:
        # A login is accepted up to and including its last second: keep it until it is past.
        while self._expiries and self._expiries[0][0] < now:
            _, entry = heapq.heappop(self._expiries)
            del self._until[entry]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class FailureLimiter:
    """A token bucket of failures per name (a client address or an API key).

    Each name may fail `burst` times at once, then `rate` times a second. A name whose
    bucket has refilled is forgotten; past `max_entries` names, the least recently
    charged is forgotten first (it is the closest to a full bucket).
    """

    def __init__(self, *, rate: float, burst: int, max_entries: int) -> None:
        """Allow `rate` failures a second with bursts of `burst`, for `max_entries` names."""
        self._rate = rate
        self._burst = float(burst)
        self._max_entries = max_entries
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        """Give the number of names with failures counted."""
        return len(self._buckets)

    def _tokens(self, bucket: _Bucket, now: float) -> float:
        # max(0, ...): a wall clock set back must not take tokens away.
        elapsed = max(0.0, now - bucket.updated)
        return min(self._burst, bucket.tokens + elapsed * self._rate)

    def allows(self, name: str, now: float) -> bool:
        """Tell whether `name` has a failure left to spend."""
        bucket = self._buckets.get(name)
        return bucket is None or self._tokens(bucket, now) >= 1

    def charge(self, name: str, now: float) -> bool:
        """Count a failure of `name`; tell whether it was within the allowance."""
        self._forget_refilled(now)
        bucket = self._buckets.pop(name, None)
        tokens = self._burst if bucket is None else self._tokens(bucket, now)
        while len(self._buckets) >= self._max_entries:
            self._buckets.popitem(last=False)
        self._buckets[name] = _Bucket(max(0.0, tokens - 1), now)
        return tokens >= 1

    def _forget_refilled(self, now: float) -> None:
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if self._tokens(oldest, now) < self._burst:
                return
            self._buckets.popitem(last=False)


class Outcome(enum.Enum):
    """What a login comes to; each refusal has its own answer and close code."""

    ACCEPTED = "accepted"
    #: An unreadable request, an unknown key, a wrong signature or time, a replay.
    FAILED = "failed"
    WRONG_PASSPHRASE = "wrong passphrase"  # noqa: S105 - an outcome's name, not a secret
    #: The address, or the key, is over its failure allowance.
    TOO_FREQUENT = "too frequent"
    #: The replay cache is full of signatures still valid.
    BUSY = "busy"


class LoginGuard:
    """The login rules of one run of B: its keys, replay cache and failure limits, on one clock.

    `check` reads and updates everything without an `await`: it is one step of the event
    loop, so two sessions sending the same signature at once cannot both be accepted.
    """

    def __init__(self, settings: Settings, clock: Clock) -> None:
        """Take the keys and limits from `settings`; read the time from `clock`."""
        self.clock = clock
        self._settings = settings
        self.replays = ReplayCache(settings.login_replay_cache_size)

        def limiter() -> FailureLimiter:
            return FailureLimiter(
                rate=settings.login_failures_per_second,
                burst=settings.login_failures_burst,
                max_entries=settings.login_rate_limit_entries,
            )

        self.by_address = limiter()
        self.by_key = limiter()

    def check(self, args: LoginArgs | None, address: str) -> Outcome:
        """Decide on the login `args` (None: a request that is not a login's shape).

        An address over its allowance is refused before its login is checked. A failure
        then costs the address and the key a token each; the key's count never refuses
        a login before it is checked, so a correct login with a key under attack from
        elsewhere still succeeds, and only a failure over the key's allowance is answered
        as too frequent.
        """
        now = self.clock()
        if not self.by_address.allows(address, now):
            return Outcome.TOO_FREQUENT
        outcome = Outcome.FAILED if args is None else self._verify(args, now)
        if outcome not in {Outcome.FAILED, Outcome.WRONG_PASSPHRASE}:
            return outcome
        address_allowed = self.by_address.charge(address, now)
        key_allowed = args is None or self.by_key.charge(args.api_key, now)
        return outcome if address_allowed and key_allowed else Outcome.TOO_FREQUENT

    def _verify(self, args: LoginArgs, now: float) -> Outcome:
        settings = self._settings
        expiry = settings.login_expiry_seconds
        verdict = verify_login(
            args,
            settings.api_keys,
            now=now,
            expiry=expiry,
            max_skew=settings.login_max_clock_skew_seconds,
        )
        if verdict is Verdict.WRONG_PASSPHRASE:
            return Outcome.WRONG_PASSPHRASE
        if verdict is Verdict.REFUSED:
            return Outcome.FAILED
        seconds = timestamp_seconds(args.timestamp)
        assert seconds is not None  # noqa: S101 - an accepted login has a valid timestamp
        claim = self.replays.claim(args.api_key, args.sign, until=seconds + expiry, now=now)
        return {
            Claim.FIRST_USE: Outcome.ACCEPTED,
            Claim.REPLAYED: Outcome.FAILED,
            Claim.FULL: Outcome.BUSY,
        }[claim]

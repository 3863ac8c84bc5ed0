"""Request coalescing: one leader fetches from the origin, followers wait for its result.

The protocol: `acquire` makes the caller the leader of a new flight or a follower
of the running one. The leader must call `release` exactly once (in `finally`),
with DONE and a storable entry, UNSHAREABLE when the response may not be shared
(private, Set-Cookie, not stored) so followers fetch on their own, or ERROR with
the origin error. A follower waits at most `follower_timeout` seconds, then gives
up and fetches on its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum

from .entry import Entry
from .errors import OriginError


class FlightStatus(Enum):
    DONE = "done"
    UNSHAREABLE = "unshareable"
    ERROR = "error"
    GIVE_UP = "give-up"


@dataclass(frozen=True, slots=True)
class FlightResult:
    status: FlightStatus
    entry: Entry | None = None
    error: OriginError | None = None


GIVE_UP = FlightResult(FlightStatus.GIVE_UP)


class Flight:
    """One origin fetch in progress for a key."""

    __slots__ = ("key", "future", "followers")

    def __init__(self, key: str, future: asyncio.Future[FlightResult]) -> None:
        self.key = key
        self.future = future
        self.followers = 0

    def __repr__(self) -> str:
        state = "done" if self.future.done() else "running"
        return f"<Flight {self.key!r} {state} followers={self.followers}>"


class Coalescer:
    def __init__(self, *, follower_timeout: float) -> None:
        self.follower_timeout = follower_timeout
        self._flights: dict[str, Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def in_flight(self, key: str) -> bool:
        return key in self._flights

    def acquire(self, key: str) -> tuple[Flight, bool]:
        """Return the flight for `key` and whether the caller leads it."""
        flight = self._flights.get(key)
        if flight is not None:
            flight.followers += 1
            return flight, False
        flight = Flight(key, asyncio.get_running_loop().create_future())
        self._flights[key] = flight
        return flight, True

    def release(self, flight: Flight, result: FlightResult) -> None:
        """End a flight and wake its followers; later calls for the same flight do nothing."""
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]
        if not flight.future.done():
            flight.future.set_result(result)

    async def wait(self, flight: Flight) -> FlightResult:
        """Wait for the leader's result as a follower; GIVE_UP after the timeout."""
        try:
            return await asyncio.wait_for(asyncio.shield(flight.future), self.follower_timeout)
        except TimeoutError:
            return GIVE_UP

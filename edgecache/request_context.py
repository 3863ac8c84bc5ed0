"""Per-request state: what the access log and metrics read, and what a cache lookup found."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .config import Rule
from .entry import Entry
from .key import CacheKey
from .outcomes import Outcome


class RequestContext:
    """Per-request facts gathered for the access log and the metrics."""

    __slots__ = ("started", "outcome", "reason", "rule", "age", "key")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.outcome = Outcome.MISS
        self.reason: str | None = None
        self.rule = "default"
        self.age = 0
        # The cache key as text once the cache was consulted; None for bypassed requests.
        self.key: str | None = None

    def __repr__(self) -> str:
        return f"<RequestContext outcome={self.outcome.value} reason={self.reason} rule={self.rule} key={self.key}>"


@dataclass(frozen=True, slots=True)
class Lookup:
    """The result of one request's lookup: its key, its rule and the stored entry, if any."""

    key: CacheKey
    rule: Rule | None
    entry: Entry | None
    # The client's request directives forbade using `entry` without revalidating it.
    forced: bool = False

    @property
    def fwd(self) -> str:
        """Why the request goes forward, as RFC 9211 names it."""
        if self.forced:
            return "request"
        return "uri-miss" if self.entry is None else "stale"

"""Per-request state that the handler fills in and the access log and metrics read."""

from __future__ import annotations

import time

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

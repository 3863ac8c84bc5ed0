"""The vocabulary of outcomes and reasons.

Each word appears unchanged in the access log, as a metrics label and in the
Cache-Status header, so an operator can follow one request through all three.
"""

from enum import StrEnum


class Outcome(StrEnum):
    """How a request was answered."""

    HIT = "hit"
    MISS = "miss"
    BYPASS = "bypass"
    STALE = "stale"
    REVALIDATED = "revalidated"
    ERROR = "error"


class Reason(StrEnum):
    """Why a request skipped the cache, or why a response was not stored."""

    # Why a request went past the cache.
    QUERY = "query"
    METHOD = "method"
    ONLY_IF_CACHED = "only-if-cached"
    CLIENT_NO_CACHE = "client-no-cache"
    PRECONDITION = "precondition"
    # Why a response was not stored.
    NO_STORE = "no-store"
    PRIVATE = "private"
    SET_COOKIE = "set-cookie"
    VARY_STAR = "vary-star"
    TOO_LARGE = "too-large"
    STATUS = "status"
    AUTHORIZATION = "authorization"
    PARTIAL = "partial"
    NO_FRESHNESS = "no-freshness"
    CONTENT_TYPE = "content-type"
    # Why an origin fetch failed.
    ORIGIN_UNREACHABLE = "origin-unreachable"
    ORIGIN_TIMEOUT = "origin-timeout"
    ORIGIN_INVALID = "origin-invalid"
    ORIGIN_BUSY = "origin-busy"
    # Why edgecache rejected a client request.
    BAD_REQUEST = "bad-request"
    # A bug in edgecache: the request got a 500 and the traceback went to the log.
    INTERNAL_ERROR = "internal-error"
    RATE_LIMITED = "rate-limited"


X_CACHE = {
    Outcome.HIT: "HIT",
    Outcome.MISS: "MISS",
    Outcome.BYPASS: "BYPASS",
    Outcome.STALE: "STALE",
    Outcome.REVALIDATED: "HIT",
    Outcome.ERROR: "MISS",
}

"""Freshness rules for a shared cache (RFC 9111 section 4.2), as pure functions.

Our policy, in short: an explicit lifetime from the origin wins (s-maxage, then
max-age, then Expires) unless a rule overrides the origin; a rule's ttl covers
responses without explicit freshness; heuristic freshness comes last. Every time
is an argument, so these functions never read the clock.

Departure: s-maxage implies proxy-revalidate (RFC 9111 section 5.2.2.10), so we do
not serve such an entry stale, unless the origin also sends stale-while-revalidate
or stale-if-error, which we take as explicit permission.
"""

from __future__ import annotations

from dataclasses import dataclass

from multidict import CIMultiDictProxy, CIMultiDict

from .cache_control import delta_seconds, parse_cache_control, parse_delta_seconds
from .config import CacheSettings, Rule
from .httpdate import parse_http_date

Headers = CIMultiDictProxy[str] | CIMultiDict[str]

# Statuses that may get heuristic freshness (RFC 9110 section 15.1).
HEURISTIC_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
# Statuses a rule's ttl applies to, before the rule's own `statuses` are added.
RULE_TTL_STATUSES = frozenset({200, 203, 204, 300, 301, 308})
# Origin statuses that a stale entry may replace (RFC 5861 section 4).
STALE_IF_ERROR_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Freshness:
    """The freshness decision for one response, in absolute epoch seconds."""

    lifetime: float
    source: str
    initial_age: float
    fresh_until: float
    stale_while_revalidate_until: float
    stale_if_error_until: float
    must_revalidate: bool
    no_cache: bool


def corrected_initial_age(
    age_header: str | None, date_value: float | None, request_time: float, response_time: float
) -> float:
    """Return the age of a response when it arrived (RFC 9111 section 4.2.3).

    An invalid Age is ignored; an overflowing one is capped at 2**31 seconds.
    """
    age_value = parse_delta_seconds(age_header.strip()) if age_header else None
    apparent_age = max(0.0, response_time - date_value) if date_value is not None else 0.0
    response_delay = max(0.0, response_time - request_time)
    return max(apparent_age, (age_value or 0) + response_delay)


def current_age(initial_age: float, response_time: float, now: float) -> float:
    """Return an entry's age at `now` (RFC 9111 section 4.2.3)."""
    return initial_age + max(0.0, now - response_time)


def freshness_lifetime(
    status: int,
    directives: dict[str, str | None],
    headers: Headers,
    *,
    rule: Rule | None,
    response_time: float,
    settings: CacheSettings,
) -> tuple[float, str]:
    """Return the freshness lifetime in seconds and where it came from (RFC 9111 section 4.2.1).

    A present but invalid s-maxage, max-age or Expires means already stale, as RFC 9111
    section 4.2.1 encourages; the next source is not consulted then.
    """
    rule_applies = rule is not None and rule.ttl is not None and (
        status in RULE_TTL_STATUSES or status in rule.statuses
    )
    if rule_applies and rule.override_origin:  # type: ignore[union-attr]
        return float(rule.ttl), "rule"  # type: ignore[union-attr,arg-type]
    for name in ("s-maxage", "max-age"):
        if name in directives:
            seconds = delta_seconds(directives, name)
            return (0.0 if seconds is None else float(seconds)), name
    if "expires" in headers:
        expires = parse_http_date(headers.get("expires"))
        if expires is None:
            return 0.0, "expires"
        return max(0.0, expires - _date_or(headers, response_time)), "expires"
    if rule_applies:
        return float(rule.ttl), "rule"  # type: ignore[union-attr,arg-type]
    last_modified = parse_http_date(headers.get("last-modified"))
    if last_modified is not None and (status in HEURISTIC_STATUSES or "public" in directives):
        heuristic = settings.heuristic_fraction * max(0.0, _date_or(headers, response_time) - last_modified)
        return min(heuristic, float(settings.heuristic_max)), "heuristic"
    return 0.0, "none"


def _date_or(headers: Headers, response_time: float) -> float:
    """Return the origin's Date, or the time the response arrived when Date is absent or invalid."""
    date_value = parse_http_date(headers.get("date"))
    return response_time if date_value is None else date_value


def compute_freshness(
    status: int,
    headers: Headers,
    *,
    request_time: float,
    response_time: float,
    rule: Rule | None,
    settings: CacheSettings,
    low_stock: bool = False,
) -> Freshness:
    """Decide once, at store time, until when an entry is fresh and may be served stale."""
    directives = parse_cache_control(headers.getall("cache-control", []))
    lifetime, source = freshness_lifetime(
        status, directives, headers, rule=rule, response_time=response_time, settings=settings
    )
    if low_stock and rule is not None and rule.low_stock_ttl is not None:
        lifetime = min(lifetime, float(rule.low_stock_ttl))
    overridden = source == "rule" and rule is not None and rule.override_origin
    no_cache = "no-cache" in directives and directives["no-cache"] is None and not overridden
    initial_age = corrected_initial_age(
        headers.get("age"), parse_http_date(headers.get("date")), request_time, response_time
    )
    fresh_until = response_time + lifetime - initial_age
    if no_cache:
        fresh_until = min(fresh_until, response_time)

    explicit_stale = "stale-while-revalidate" in directives or "stale-if-error" in directives
    must_revalidate = (
        "must-revalidate" in directives
        or "proxy-revalidate" in directives
        or ("s-maxage" in directives and not explicit_stale)
    ) and not overridden
    swr = _stale_window(directives, "stale-while-revalidate", rule.stale_while_revalidate if rule else None,
                        settings.stale_while_revalidate)
    sie = _stale_window(directives, "stale-if-error", rule.stale_if_error if rule else None, settings.stale_if_error)
    if must_revalidate or no_cache:
        # RFC 9111 section 4.2.4: no stale response where a directive forbids it.
        swr = sie = 0
    return Freshness(
        lifetime=lifetime,
        source=source,
        initial_age=initial_age,
        fresh_until=fresh_until,
        stale_while_revalidate_until=fresh_until + swr,
        stale_if_error_until=fresh_until + sie,
        must_revalidate=must_revalidate,
        no_cache=no_cache,
    )


def _stale_window(directives: dict[str, str | None], name: str, rule_value: int | None, default: int) -> int:
    """Return a stale window: the origin's directive, else the rule's, else the setting."""
    seconds = delta_seconds(directives, name)
    if seconds is not None:
        return seconds
    if rule_value is not None:
        return rule_value
    return default


def client_requires_revalidation(cache_control: list[str], pragma: str | None, *, age: float) -> bool:
    """Return whether a client's request directives forbid using a stored entry unvalidated.

    RFC 9111 sections 5.2.1.1 (max-age), 5.2.1.4 (no-cache) and 5.4 (Pragma, only
    without Cache-Control). max-age=0 always revalidates, as browsers mean it on reload.
    Used only when cache.client_no_cache is "revalidate"; by default these are ignored.
    """
    if not cache_control:
        return pragma is not None and "no-cache" in (part.strip().lower() for part in pragma.split(","))
    directives = parse_cache_control(cache_control)
    if "no-cache" in directives:
        return True
    max_age = delta_seconds(directives, "max-age")
    return max_age is not None and (max_age == 0 or age > max_age)

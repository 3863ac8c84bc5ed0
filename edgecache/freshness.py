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

from .cache_control import delta_seconds, parse_cache_control
from .config import CacheSettings, Rule
from .httpdate import parse_http_date

Headers = CIMultiDictProxy[str] | CIMultiDict[str]

# Statuses that may get heuristic freshness (RFC 9110 section 15.1).
HEURISTIC_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
# Statuses a rule's ttl applies to, before the rule's own `statuses` are added.
RULE_TTL_STATUSES = frozenset({200, 203, 204, 300, 301, 308})


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
    """Return the age of a response when it arrived (RFC 9111 section 4.2.3)."""
    age_value = float(min(int(age_header), 2**31)) if age_header and age_header.strip().isdigit() else 0.0
    apparent_age = max(0.0, response_time - date_value) if date_value is not None else 0.0
    response_delay = max(0.0, response_time - request_time)
    return max(apparent_age, age_value + response_delay)


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
    """Return the freshness lifetime in seconds and where it came from (RFC 9111 section 4.2.1)."""
    rule_applies = rule is not None and rule.ttl is not None and (
        status in RULE_TTL_STATUSES or status in rule.statuses
    )
    if rule_applies and rule.override_origin:  # type: ignore[union-attr]
        return float(rule.ttl), "rule"  # type: ignore[union-attr,arg-type]
    for name in ("s-maxage", "max-age"):
        seconds = delta_seconds(directives, name)
        if seconds is not None:
            return float(seconds), name
    if "expires" in headers:
        expires = parse_http_date(headers.get("expires"))
        if expires is None:
            return 0.0, "expires"  # An invalid Expires means already stale.
        date_value = parse_http_date(headers.get("date")) or response_time
        return max(0.0, expires - date_value), "expires"
    if rule_applies:
        return float(rule.ttl), "rule"  # type: ignore[union-attr,arg-type]
    last_modified = parse_http_date(headers.get("last-modified"))
    if status in HEURISTIC_STATUSES and last_modified is not None:
        date_value = parse_http_date(headers.get("date")) or response_time
        heuristic = settings.heuristic_fraction * max(0.0, date_value - last_modified)
        return min(heuristic, float(settings.heuristic_max)), "heuristic"
    return 0.0, "none"


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
    swr = _stale_window(directives, "stale-while-revalidate", rule and rule.stale_while_revalidate,
                        settings.stale_while_revalidate)
    sie = _stale_window(directives, "stale-if-error", rule and rule.stale_if_error, settings.stale_if_error)
    if must_revalidate:
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

"""Freshness rules as tables: RFC 9111 sections 1.2.2, 4.2 and 5.2, RFC 9110 section 5.6.7, RFC 5861.

Every function here is pure; `now` and the request and response times are arguments.
"""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from edgecache.cache_control import MAX_DELTA_SECONDS, parse_cache_control, parse_delta_seconds
from edgecache.config import CacheSettings, Rule
from edgecache.freshness import (
    Freshness,
    client_requires_revalidation,
    compute_freshness,
    corrected_initial_age,
    current_age,
)
from edgecache.httpdate import format_http_date, parse_http_date

T = 1_700_000_000.0  # response time in every row
SETTINGS = CacheSettings(stale_if_error=300, stale_while_revalidate=0, heuristic_fraction=0.1, heuristic_max=86400)
PRODUCT = Rule(name="product", match="/*/p", ttl=30)


def date(offset: float) -> str:
    return format_http_date(T + offset)


def headers(**fields: str) -> CIMultiDict[str]:
    return CIMultiDict((name.replace("_", "-"), value) for name, value in fields.items())


def freshness(fields: CIMultiDict[str], *, status: int = 200, rule: Rule | None = None,
              settings: CacheSettings = SETTINGS, request_time: float = T) -> Freshness:
    return compute_freshness(status, fields, request_time=request_time, response_time=T, rule=rule,
                             settings=settings)


# RFC 9111 section 4.2.3: age calculations.

@pytest.mark.parametrize(("age", "date_value", "request_time", "expected"), [
    pytest.param(None, None, T, 0.0, id="9111-4.2.3-no-age-no-date"),
    pytest.param("100", None, T, 100.0, id="9111-4.2.3-age-header"),
    pytest.param("100", None, T - 2, 102.0, id="9111-4.2.3-age-plus-response-delay"),
    pytest.param(None, T - 40, T, 40.0, id="9111-4.2.3-apparent-age-from-date"),
    pytest.param("10", T - 40, T, 40.0, id="9111-4.2.3-larger-of-apparent-and-corrected"),
    pytest.param("50", T - 40, T, 50.0, id="9111-4.2.3-age-beats-date"),
    pytest.param(None, T + 30, T, 0.0, id="9111-4.2.3-date-in-future-no-negative-age"),
    pytest.param("abc", None, T, 0.0, id="9111-5.1-invalid-age-ignored"),
    pytest.param("-5", None, T, 0.0, id="9111-5.1-negative-age-ignored"),
    pytest.param("9" * 5000, None, T, float(MAX_DELTA_SECONDS), id="9111-1.2.2-age-overflow-capped"),
])
def test_corrected_initial_age(age: str | None, date_value: float | None, request_time: float,
                               expected: float) -> None:
    assert corrected_initial_age(age, date_value, request_time, T) == expected


@pytest.mark.parametrize(("initial_age", "now", "expected"), [
    pytest.param(0.0, T, 0.0, id="9111-4.2.3-current-age-at-arrival"),
    pytest.param(5.0, T + 10, 15.0, id="9111-4.2.3-resident-time-added"),
    pytest.param(5.0, T - 10, 5.0, id="9111-4.2.3-clock-behind-response-time"),
])
def test_current_age(initial_age: float, now: float, expected: float) -> None:
    assert current_age(initial_age, T, now) == expected


# RFC 9111 section 4.2.1: the freshness lifetime, and where it came from.

@pytest.mark.parametrize(("fields", "rule", "lifetime", "source"), [
    pytest.param(headers(cache_control="s-maxage=20, max-age=60"), None, 20.0, "s-maxage",
                 id="9111-4.2.1-s-maxage-first"),
    pytest.param(headers(cache_control="max-age=60", expires=date(600), date=date(0)), None, 60.0, "max-age",
                 id="9111-5.3-max-age-beats-expires"),
    pytest.param(headers(expires=date(120), date=date(-30)), None, 150.0, "expires",
                 id="9111-4.2.1-expires-minus-date"),
    pytest.param(headers(expires=date(120)), None, 120.0, "expires", id="9111-4.2.1-expires-without-date"),
    pytest.param(headers(expires="0"), None, 0.0, "expires", id="9111-5.3-invalid-expires-already-stale"),
    pytest.param(headers(expires="0"), PRODUCT, 0.0, "expires", id="9111-5.3-invalid-expires-beats-rule"),
    pytest.param(headers(expires=date(-60), date=date(0)), None, 0.0, "expires", id="9111-5.3-expires-in-past"),
    pytest.param(headers(cache_control="max-age=abc", expires=date(600)), None, 0.0, "max-age",
                 id="9111-4.2.1-invalid-max-age-stale"),
    pytest.param(headers(cache_control="max-age"), None, 0.0, "max-age", id="9111-4.2.1-max-age-without-value"),
    pytest.param(headers(cache_control='max-age="90"'), None, 90.0, "max-age", id="9111-5.2-quoted-max-age"),
    pytest.param(headers(cache_control="max-age=99999999999999999999"), None, float(MAX_DELTA_SECONDS),
                 "max-age", id="9111-1.2.2-delta-seconds-overflow-capped"),
    pytest.param(headers(cache_control="max-age=" + "9" * 5000), None, float(MAX_DELTA_SECONDS), "max-age",
                 id="9111-1.2.2-delta-seconds-thousands-of-digits"),
    pytest.param(headers(cache_control="max-age=10, max-age=99"), None, 10.0, "max-age",
                 id="9111-4.2.1-repeated-directive-first-wins"),
    pytest.param(CIMultiDict([("Cache-Control", "public"), ("Cache-Control", "max-age=45")]), None, 45.0,
                 "max-age", id="9111-5.2-directives-over-several-lines"),
    pytest.param(headers(), PRODUCT, 30.0, "rule", id="edgecache-rule-ttl-without-origin-freshness"),
    pytest.param(headers(cache_control="max-age=600"), PRODUCT, 600.0, "max-age",
                 id="edgecache-origin-beats-rule"),
    pytest.param(headers(cache_control="max-age=600"), Rule(name="r", match="*", ttl=5, override_origin=True),
                 5.0, "rule", id="edgecache-rule-override-origin"),
    pytest.param(headers(), None, 0.0, "none", id="9111-4.2-no-freshness-information"),
])
def test_freshness_lifetime(fields: CIMultiDict[str], rule: Rule | None, lifetime: float, source: str) -> None:
    result = freshness(fields, rule=rule)

    assert (result.lifetime, result.source) == (lifetime, source)


# RFC 9111 section 4.2.2: heuristic freshness.

@pytest.mark.parametrize(("status", "fields", "rule", "lifetime", "source"), [
    pytest.param(200, headers(last_modified=date(-1000), date=date(0)), None, 100.0, "heuristic",
                 id="9111-4.2.2-fraction-of-last-modified-age"),
    pytest.param(200, headers(last_modified=date(-10_000_000), date=date(0)), None, 86400.0, "heuristic",
                 id="9111-4.2.2-heuristic-capped"),
    pytest.param(404, headers(last_modified=date(-1000), date=date(0)), None, 100.0, "heuristic",
                 id="9110-15.1-404-heuristically-cacheable"),
    pytest.param(302, headers(last_modified=date(-1000), date=date(0)), None, 0.0, "none",
                 id="9111-4.2.2-302-not-heuristically-cacheable"),
    pytest.param(302, headers(cache_control="public", last_modified=date(-1000), date=date(0)), None, 100.0,
                 "heuristic", id="9111-4.2.2-public-allows-heuristic"),
    pytest.param(200, headers(last_modified=date(-1000), expires="never"), None, 0.0, "expires",
                 id="9111-4.2.2-no-heuristic-with-explicit-expires"),
    pytest.param(200, headers(last_modified=date(-1000), cache_control="max-age=7"), None, 7.0, "max-age",
                 id="9111-4.2.2-no-heuristic-with-explicit-max-age"),
    pytest.param(200, headers(last_modified=date(-1000)), PRODUCT, 30.0, "rule",
                 id="edgecache-no-heuristic-when-rule-gives-ttl"),
    pytest.param(200, headers(last_modified=date(600), date=date(0)), None, 0.0, "heuristic",
                 id="9111-4.2.2-last-modified-in-future"),
    pytest.param(200, headers(last_modified="yesterday"), None, 0.0, "none",
                 id="9110-5.6.7-invalid-last-modified-ignored"),
])
def test_heuristic_freshness(status: int, fields: CIMultiDict[str], rule: Rule | None, lifetime: float,
                             source: str) -> None:
    result = freshness(fields, status=status, rule=rule)

    assert (result.lifetime, result.source) == (lifetime, source)


def test_heuristic_uses_setting() -> None:
    settings = CacheSettings(heuristic_fraction=0.5, heuristic_max=60)
    result = freshness(headers(last_modified=date(-100), date=date(0)), settings=settings)

    assert (result.lifetime, result.source) == (50.0, "heuristic")


# Negative caching: a rule's ttl reaches 404 and 410 only when the rule lists them.

@pytest.mark.parametrize(("status", "rule", "lifetime"), [
    pytest.param(404, Rule(name="neg", match="*", ttl=10, statuses=(404, 410)), 10.0, id="edgecache-404-by-rule"),
    pytest.param(410, Rule(name="neg", match="*", ttl=10, statuses=(404, 410)), 10.0, id="edgecache-410-by-rule"),
    pytest.param(404, Rule(name="pos", match="*", ttl=10), 0.0, id="edgecache-404-not-without-statuses"),
    pytest.param(503, Rule(name="err", match="*", ttl=3, statuses=(503,)), 3.0, id="edgecache-503-by-rule"),
])
def test_rule_ttl_statuses(status: int, rule: Rule, lifetime: float) -> None:
    assert freshness(headers(), status=status, rule=rule).lifetime == lifetime


# fresh_until and the stale windows (RFC 9111 sections 4.2.4, 5.2.2; RFC 5861).

@pytest.mark.parametrize(("fields", "rule", "fresh_until", "swr_until", "sie_until", "must_revalidate"), [
    pytest.param(headers(cache_control="max-age=60"), None, T + 60, T + 60, T + 360, False,
                 id="5861-3-setting-windows"),
    pytest.param(headers(cache_control="max-age=60", age="20"), None, T + 40, T + 40, T + 340, False,
                 id="9111-4.2.3-age-shortens-fresh-until"),
    pytest.param(headers(cache_control="max-age=60, stale-while-revalidate=30, stale-if-error=90"), None,
                 T + 60, T + 90, T + 150, False, id="5861-3-origin-windows"),
    pytest.param(headers(cache_control="max-age=60"), Rule(name="r", match="*", stale_while_revalidate=10,
                                                           stale_if_error=20), T + 60, T + 70, T + 80, False,
                 id="5861-3-rule-windows"),
    pytest.param(headers(cache_control="max-age=60, stale-while-revalidate=5"),
                 Rule(name="r", match="*", stale_while_revalidate=10), T + 60, T + 65, T + 360, False,
                 id="5861-3-origin-window-beats-rule"),
    pytest.param(headers(cache_control="max-age=60, must-revalidate, stale-if-error=90"), None,
                 T + 60, T + 60, T + 60, True, id="9111-5.2.2.2-must-revalidate-no-stale"),
    pytest.param(headers(cache_control="max-age=60, proxy-revalidate"), None, T + 60, T + 60, T + 60, True,
                 id="9111-5.2.2.8-proxy-revalidate-no-stale"),
    pytest.param(headers(cache_control="s-maxage=60"), None, T + 60, T + 60, T + 60, True,
                 id="9111-5.2.2.10-s-maxage-implies-proxy-revalidate"),
    pytest.param(headers(cache_control="s-maxage=60, stale-if-error=90"), None, T + 60, T + 60, T + 150, False,
                 id="edgecache-s-maxage-with-stale-if-error-allows-stale"),
    pytest.param(headers(cache_control="max-age=60, no-cache", etag='"v1"'), None, T, T, T, False,
                 id="9111-5.2.2.4-no-cache-stale-at-once-never-served-stale"),
    pytest.param(headers(cache_control='max-age=60, no-cache="set-cookie"'), None, T + 60, T + 60, T + 360, False,
                 id="9111-5.2.2.4-qualified-no-cache-keeps-freshness"),
    pytest.param(headers(cache_control="max-age=60, must-revalidate"), Rule(name="r", match="*", ttl=5,
                                                                           override_origin=True),
                 T + 5, T + 5, T + 305, False, id="edgecache-override-origin-ignores-must-revalidate"),
])
def test_fresh_until_and_stale_windows(fields: CIMultiDict[str], rule: Rule | None, fresh_until: float,
                                       swr_until: float, sie_until: float, must_revalidate: bool) -> None:
    result = freshness(fields, rule=rule)

    assert (result.fresh_until, result.stale_while_revalidate_until, result.stale_if_error_until,
            result.must_revalidate) == (fresh_until, swr_until, sie_until, must_revalidate)


def test_no_cache_flag() -> None:
    assert freshness(headers(cache_control="no-cache, max-age=60")).no_cache is True
    assert freshness(headers(cache_control='no-cache="x-user"')).no_cache is False


# RFC 9110 section 5.6.7: HTTP-date, lenient.

@pytest.mark.parametrize(("value", "expected"), [
    pytest.param("Sun, 06 Nov 1994 08:49:37 GMT", 784111777.0, id="9110-5.6.7-imf-fixdate"),
    pytest.param("Sunday, 06-Nov-94 08:49:37 GMT", 784111777.0, id="9110-5.6.7-rfc850-date"),
    pytest.param("Sun Nov  6 08:49:37 1994", 784111777.0, id="9110-5.6.7-asctime-date"),
    pytest.param("Sun, 06 Nov 1994 08:49:37", 784111777.0, id="9110-5.6.7-missing-zone-is-gmt"),
    pytest.param("0", None, id="9110-5.6.7-zero-invalid"),
    pytest.param("-1", None, id="9110-5.6.7-negative-invalid"),
    pytest.param("", None, id="9110-5.6.7-empty-invalid"),
    pytest.param("Mon, 99 Foo 2020 99:99:99 GMT", None, id="9110-5.6.7-garbage-invalid"),
])
def test_parse_http_date(value: str, expected: float | None) -> None:
    assert parse_http_date(value) == expected


# RFC 9111 section 1.2.2 and 5.2: delta-seconds and Cache-Control parsing.

@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("60", 60, id="9111-1.2.2-digits"),
    pytest.param("2147483648", MAX_DELTA_SECONDS, id="9111-1.2.2-at-cap"),
    pytest.param("2147483649", MAX_DELTA_SECONDS, id="9111-1.2.2-above-cap"),
    pytest.param("9" * 10_000, MAX_DELTA_SECONDS, id="9111-1.2.2-very-long"),
    pytest.param("\u00b2", None, id="9111-1.2.2-non-ascii-digit"),
    pytest.param("-1", None, id="9111-1.2.2-negative"),
    pytest.param("1.5", None, id="9111-1.2.2-fraction"),
    pytest.param(None, None, id="9111-1.2.2-absent"),
])
def test_delta_seconds(text: str | None, expected: int | None) -> None:
    assert parse_delta_seconds(text) == expected


@pytest.mark.parametrize(("values", "expected"), [
    pytest.param(["Max-Age=60, PUBLIC"], {"max-age": "60", "public": None}, id="9111-5.2-names-case-insensitive"),
    pytest.param(['no-cache="set-cookie, x-user", max-age=5'], {"no-cache": "set-cookie, x-user", "max-age": "5"},
                 id="9111-5.2-quoted-list-is-one-argument"),
    pytest.param(["max-age=5, max-age=9"], {"max-age": "5"}, id="9111-4.2.1-first-occurrence-wins"),
    pytest.param([" , ,max-age=5,"], {"max-age": "5"}, id="9111-5.2-empty-members-ignored"),
])
def test_parse_cache_control(values: list[str], expected: dict[str, str | None]) -> None:
    assert parse_cache_control(values) == expected


# RFC 9111 sections 5.2.1 and 5.4: request directives (consulted only with client_no_cache = "revalidate").

@pytest.mark.parametrize(("cache_control", "pragma", "age", "expected"), [
    pytest.param([], None, 5.0, False, id="9111-5.2.1-no-directives"),
    pytest.param(["no-cache"], None, 0.0, True, id="9111-5.2.1.4-no-cache"),
    pytest.param(["max-age=0"], None, 0.0, True, id="9111-5.2.1.1-max-age-zero"),
    pytest.param(["max-age=10"], None, 5.0, False, id="9111-5.2.1.1-max-age-younger"),
    pytest.param(["max-age=10"], None, 11.0, True, id="9111-5.2.1.1-max-age-older"),
    pytest.param([], "no-cache", 0.0, True, id="9111-5.4-pragma-no-cache"),
    pytest.param(["max-age=60"], "no-cache", 0.0, False, id="9111-5.4-pragma-ignored-with-cache-control"),
    pytest.param([], "x-other", 0.0, False, id="9111-5.4-other-pragma"),
    pytest.param(["max-stale=60"], None, 500.0, False, id="9111-5.2.1.2-max-stale-not-a-reason"),
])
def test_client_requires_revalidation(cache_control: list[str], pragma: str | None, age: float,
                                      expected: bool) -> None:
    assert client_requires_revalidation(cache_control, pragma, age=age) is expected

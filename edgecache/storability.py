"""Whether a response may be stored by a shared cache (RFC 9111 section 3), as pure functions."""

from __future__ import annotations

from multidict import CIMultiDict

from .cache_control import field_names, parse_cache_control
from .config import Rule
from .freshness import Freshness, Headers
from .outcomes import Reason

# Final statuses we store by default. 5xx only when a rule lists them (not even 501,
# which RFC 9110 calls heuristically cacheable: an error page must not outlive the error);
# 206 never.
STORABLE_STATUSES = frozenset({200, 203, 204, 300, 301, 302, 307, 308, 404, 405, 410, 414})

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
    "proxy-connection", "proxy-authenticate", "proxy-authorization",
})


def refuse_to_store(
    *,
    method: str,
    status: int,
    headers: Headers,
    rule: Rule | None,
    request_has_authorization: bool,
) -> Reason | None:
    """Return why a response must not be stored, or None when it may be (RFC 9111 section 3).

    The first reason found is the one reported, so each refusal has exactly one.
    Set-Cookie refuses storing unless a qualified no-cache or private names it, because
    then it is dropped from the stored copy (see `headers_to_store`).
    """
    directives = parse_cache_control(headers.getall("cache-control", []))
    if method != "GET":
        return Reason.METHOD
    if status == 206:
        return Reason.PARTIAL
    understood = status in STORABLE_STATUSES or (rule is not None and status in rule.statuses)
    if not understood:
        return Reason.STATUS
    # RFC 9111 section 5.2.2.3: must-understand overrides no-store for a status we understand.
    if "no-store" in directives and "must-understand" not in directives:
        return Reason.NO_STORE
    if "private" in directives and directives["private"] is None:
        return Reason.PRIVATE
    if "set-cookie" in headers and "set-cookie" not in qualified_fields(directives):
        return Reason.SET_COOKIE
    if any(part.strip() == "*" for value in headers.getall("vary", []) for part in value.split(",")):
        return Reason.VARY_STAR
    if request_has_authorization and not (
        "public" in directives or "s-maxage" in directives or "must-revalidate" in directives
    ):
        return Reason.AUTHORIZATION
    if rule is not None and rule.content_types:
        content_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if content_type not in rule.content_types:
            return Reason.CONTENT_TYPE
    return None


def qualified_fields(directives: dict[str, str | None]) -> frozenset[str]:
    """Return the fields a shared cache must not store: those named by no-cache="..." or private="...".

    RFC 9111 sections 5.2.2.4 and 5.2.2.7.
    """
    return frozenset(field_names(directives, "no-cache") + field_names(directives, "private"))


def refuse_for_freshness(freshness: Freshness, headers: Headers) -> Reason | None:
    """Refuse an entry without a freshness lifetime, unless it is kept to be revalidated.

    An entry with no-cache and validators is stored, because each use then costs a
    304 instead of a full response; any other entry without a lifetime would never be
    served fresh, so it is not stored.
    """
    if freshness.lifetime > 0:
        return None
    if freshness.no_cache and ("etag" in headers or "last-modified" in headers):
        return None
    return Reason.NO_FRESHNESS


def headers_to_store(headers: Headers, *, tag_header: str | None) -> CIMultiDict[str]:
    """Return the response headers worth storing.

    Hop-by-hop fields, framing fields that the server sets again, Age (recomputed
    on every response) and the fields named by a qualified no-cache or private are
    dropped, as is the tag header unless `tag_header` is None.
    """
    directives = parse_cache_control(headers.getall("cache-control", []))
    dropped = set(HOP_BY_HOP) | {"content-length", "age"} | qualified_fields(directives)
    for value in headers.getall("connection", []):
        dropped.update(name.strip().lower() for name in value.split(","))
    if tag_header:
        dropped.add(tag_header.lower())
    return CIMultiDict((name, value) for name, value in headers.items() if name.lower() not in dropped)


def unstored_fields(headers: Headers) -> list[tuple[str, str]]:
    """Return the fields named by a qualified no-cache or private, with their values.

    They are not stored, but the client whose request fetched the response still gets them.
    """
    names = qualified_fields(parse_cache_control(headers.getall("cache-control", [])))
    if not names:
        return []
    return [(name, value) for name, value in headers.items() if name.lower() in names]

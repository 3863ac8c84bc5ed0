"""HTTP-date parsing and formatting (RFC 9110 section 5.6.7)."""

from __future__ import annotations

from email.utils import formatdate, parsedate_tz, mktime_tz


def parse_http_date(value: str | None) -> float | None:
    """Return the epoch seconds of an HTTP-date, or None when absent or invalid."""
    if not value:
        return None
    try:
        parsed = parsedate_tz(value)
        return float(mktime_tz(parsed)) if parsed else None
    except (TypeError, ValueError, OverflowError):
        return None


def format_http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)

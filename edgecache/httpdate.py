"""HTTP-date parsing and formatting (RFC 9110 section 5.6.7)."""

from __future__ import annotations

import calendar
from email.utils import formatdate, parsedate_tz


def parse_http_date(value: str | None) -> float | None:
    """Return the epoch seconds of an HTTP-date, or None when absent or invalid.

    Lenient: the three formats of RFC 9110 and the usual near misses are accepted.
    A date without a zone is taken as GMT, never as the machine's local time.
    """
    if not value:
        return None
    try:
        parsed = parsedate_tz(value)
        if parsed is None:
            return None
        return float(calendar.timegm(parsed[:6] + (0, 0, 0)) - (parsed[9] or 0))
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def format_http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)

"""Explanations of cache decisions for one path: what is stored and what a request would get.

The decision mirrors the request handler's ladder (fresh, stale-while-revalidate,
revalidate with validators, fetch) for a plain GET without request directives.
"""

from __future__ import annotations

from typing import Any

from .config import Rule
from .entry import Entry


def decide(entry: Entry | None, now: float, *, has_query: bool = False) -> tuple[str, str]:
    """Return the outcome a plain GET would get at `now`, and the explanation of that outcome."""
    if has_query:
        return "bypass", "the request has a query string, so it is forwarded and never stored"
    if entry is None:
        return "miss", "no entry is stored, so the origin is asked and the response stored if allowed"
    if entry.is_fresh(now):
        return "hit", f"the entry is fresh for {entry.fresh_until - now:.0f} s more"
    if entry.may_serve_while_revalidating(now) and not entry.no_cache:
        return "stale", (f"the entry is stale but within stale-while-revalidate for "
                         f"{entry.stale_while_revalidate_until - now:.0f} s more, so it is served "
                         "while one background refresh runs")
    explanation = "the entry is stale"
    if entry.no_cache:
        explanation = "the origin sent no-cache"
    elif entry.forbid_stale:
        explanation = "an inventory event made the entry wrong, so it may not be served stale"
    if entry.has_validators:
        return "revalidated", f"{explanation}; a conditional request to the origin decides whether it can be reused"
    return "miss", f"{explanation} and has no validators, so the origin is asked for a full response"


def describe_entry(entry: Entry, now: float) -> dict[str, Any]:
    """Return the stored facts of an entry, with times relative to `now` in seconds."""
    outcome, explanation = decide(entry, now)
    return {
        "key": str(entry.key),
        "variant": entry.variant,
        "vary": list(entry.vary),
        "status": entry.status,
        "rule": entry.rule,
        "age_seconds": round(entry.age(now), 3),
        "freshness_lifetime_seconds": round(entry.lifetime, 3),
        "ttl_seconds": round(entry.fresh_until - now, 3),
        "stale_while_revalidate_seconds": round(max(0.0, entry.stale_while_revalidate_until - now), 3),
        "stale_if_error_seconds": round(max(0.0, entry.stale_if_error_until - now), 3),
        "must_revalidate": entry.must_revalidate,
        "no_cache": entry.no_cache,
        "forbid_stale": entry.forbid_stale,
        "validators": {"etag": entry.etag, "last_modified": entry.last_modified},
        "tags": sorted(entry.tags),
        "claims": [{"sku": sku, "availability": state} for sku, state in entry.claims],
        "size_bytes": entry.size,
        "decision": {"outcome": outcome, "explanation": explanation},
    }


def explain(path: str, key: str, entries: list[Entry], now: float, *, rule: Rule | None,
            has_query: bool) -> dict[str, Any]:
    """Return the /entries document for one path and its stored variants."""
    first = entries[0] if entries and not has_query else None
    outcome, explanation = decide(first, now, has_query=has_query)
    return {
        "path": path,
        "key": key,
        "rule": rule.name if rule else "default",
        "stored": bool(entries),
        "entries": [describe_entry(entry, now) for entry in entries],
        "decision": {"outcome": outcome, "explanation": explanation},
    }


def format_explanation(document: dict[str, Any]) -> str:
    """Return an /entries document as lines of text for the terminal."""
    lines = [
        f"path      {document['path']}",
        f"key       {document['key']}",
        f"rule      {document['rule']}",
        f"stored    {'yes' if document['stored'] else 'no'}",
    ]
    for entry in document["entries"]:
        validators = entry["validators"]
        lines += [
            "",
            f"variant   {entry['variant'] or '-'}" + (f"  (vary: {', '.join(entry['vary'])})" if entry["vary"] else ""),
            f"status    {entry['status']}   size {entry['size_bytes']} bytes",
            f"age       {entry['age_seconds']:.0f} s of a {entry['freshness_lifetime_seconds']:.0f} s lifetime, "
            f"ttl {entry['ttl_seconds']:.0f} s",
            f"stale     while-revalidate {entry['stale_while_revalidate_seconds']:.0f} s left, "
            f"if-error {entry['stale_if_error_seconds']:.0f} s left"
            + ("   must-revalidate" if entry["must_revalidate"] else "")
            + ("   no-cache" if entry["no_cache"] else "")
            + ("   stale forbidden" if entry["forbid_stale"] else ""),
            f"etag      {validators['etag'] or '-'}",
            f"modified  {validators['last_modified'] or '-'}",
            f"tags      {' '.join(entry['tags']) or '-'}",
            "claims    " + (", ".join(f"{claim['sku']} {claim['availability']}" for claim in entry["claims"]) or "-"),
            f"decision  {entry['decision']['outcome']}: {entry['decision']['explanation']}",
        ]
    if not document["entries"]:
        lines.append(f"decision  {document['decision']['outcome']}: {document['decision']['explanation']}")
    return "\n".join(lines)

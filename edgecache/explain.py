"""Explanations of cache decisions for one path: what is stored and what a request would get.

The decision mirrors the request handler's ladder (fresh, stale-while-revalidate,
revalidate with validators, fetch) for a plain GET without request directives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import Rule
from .entry import Entry


@dataclass(frozen=True, slots=True)
class InventoryFacts:
    """Inventory-event facts about one stored entry. Times are epoch seconds."""

    # Latest state from events of each SKU the entry claims or is tagged with; None when no event came.
    latest: dict[str, str | None]
    # Arrival of the first state change newer than the entry, when one arrived.
    known_stale_since: float | None = None
    # When a purge held back by a storm window is due.
    purge_due: float | None = None

    def explanation(self, now: float) -> str:
        """Return why the entry may show the wrong availability, or "" when no event made it wrong."""
        if self.known_stale_since is None:
            return ""
        text = (f"but an inventory event {now - self.known_stale_since:.0f} s ago changed the state of a SKU "
                "the page shows")
        if self.purge_due is not None:
            text += f", and its purge waits {max(0.0, self.purge_due - now):.0f} s more for the storm window to end"
        return text


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


def describe_entry(entry: Entry, now: float, inventory: InventoryFacts | None = None) -> dict[str, Any]:
    """Return the stored facts of an entry, with times relative to `now` in seconds."""
    outcome, explanation = explain_decision(entry, now, inventory)
    document: dict[str, Any] = {
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
    if inventory is not None:
        document["inventory"] = {
            "latest_states": inventory.latest,
            "known_stale_seconds": _seconds_since(inventory.known_stale_since, now),
            "purge_due_seconds": None if inventory.purge_due is None else round(inventory.purge_due - now, 3),
        }
    return document


def explain_decision(entry: Entry | None, now: float, inventory: InventoryFacts | None,
                     *, has_query: bool = False) -> tuple[str, str]:
    """Return `decide`'s outcome and explanation, adding why a served page may show the wrong availability."""
    outcome, explanation = decide(entry, now, has_query=has_query)
    known_stale = inventory.explanation(now) if inventory is not None else ""
    if known_stale and outcome in ("hit", "stale"):
        explanation = f"{explanation}, {known_stale}"
    return outcome, explanation


def explain(path: str, key: str, entries: list[Entry], now: float, *, rule: Rule | None,
            has_query: bool, inventory: dict[str, InventoryFacts] | None = None) -> dict[str, Any]:
    """Return the /entries document for one path and its stored variants.

    `inventory` maps store keys to the inventory-event facts of those entries.
    """
    facts = inventory or {}
    first = entries[0] if entries and not has_query else None
    outcome, explanation = explain_decision(first, now, facts.get(first.store_key) if first else None,
                                            has_query=has_query)
    return {
        "path": path,
        "key": key,
        "rule": rule.name if rule else "default",
        "stored": bool(entries),
        "entries": [describe_entry(entry, now, facts.get(entry.store_key)) for entry in entries],
        "decision": {"outcome": outcome, "explanation": explanation},
    }


def _seconds_since(at: float | None, now: float) -> float | None:
    return None if at is None else round(now - at, 3)


def format_explanation(document: dict[str, Any]) -> str:
    """Return an /entries document as lines of text for the terminal.

    The request's decision comes first. Each stored variant then has its own
    `entry` line with the outcome that a request without a query string would get from it.
    """
    path, has_query, _ = document["path"].partition("?")
    lines = [
        f"path      {document['path']}",
        f"key       {document['key']}",
        f"rule      {document['rule']}",
        f"stored    {'yes' if document['stored'] else 'no'}",
        f"decision  {document['decision']['outcome']}: {document['decision']['explanation']}",
    ]
    for index, entry in enumerate(document["entries"]):
        validators = entry["validators"]
        lines.append("")
        if has_query and index == 0:
            # The entries belong to the path without its query string, and this request bypasses them.
            lines.append(f"stored for {path}, which a request without the query string would get:")
        if "worker" in entry:
            # Set by the supervisor of several workers, whose memory stores differ.
            lines.append(f"worker    {entry['worker']}")
        lines += [
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
            *_format_inventory(entry.get("inventory")),
            f"entry     {entry['decision']['outcome']}: {entry['decision']['explanation']}",
        ]
    return "\n".join(lines)


def _format_inventory(inventory: dict[str, Any] | None) -> list[str]:
    """Return the terminal line of the latest SKU states from events, when any event named the entry's SKUs."""
    if not inventory or not inventory["latest_states"]:
        return []
    states = ", ".join(f"{sku} {state or 'no event yet'}" for sku, state in inventory["latest_states"].items())
    line = f"events    {states}"
    if inventory["known_stale_seconds"] is not None:
        line += f"; known stale for {inventory['known_stale_seconds']:.0f} s"
    if inventory["purge_due_seconds"] is not None:
        line += f"; purge due in {max(0.0, inventory['purge_due_seconds']):.0f} s"
    return [line]

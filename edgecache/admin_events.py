"""POST /events/inventory on the admin listener: one inventory event or a batch of them.

The body is one event object or an array of them:
`{"sku": "SKU-1", "available_quantity": 3, "version": 812, "timestamp": "2024-05-01T12:00:00Z"}`,
with an explicit `"state"` (in_stock, low_stock, out_of_stock, backorder) instead of
the quantity when the producer has it. The whole batch is checked before any event
is applied, so a 400 means nothing changed; the message names the invalid field.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from .admin import EDGECACHE_KEY, check_token, client_address, json_error, json_response
from .extract import STATES
from .inventory import InventoryEvent
from .log import admin_logger
from .shared import InventoryMessage

EVENT_FIELDS = ("sku", "available_quantity", "state", "version", "timestamp")
# Longest SKU accepted, in characters; it becomes part of a tag.
MAX_SKU_LENGTH = 200


class EventError(ValueError):
    """An invalid event in a request body; the message names the field."""


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_timestamp(value: Any, where: str) -> float | None:
    """Return epoch seconds from an ISO 8601 string or a number; a missing zone means UTC."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            return parsed.replace(tzinfo=parsed.tzinfo or timezone.utc).timestamp()
    raise EventError(f"{where}timestamp must be an ISO 8601 date-time string or epoch seconds, got {value!r}")


def parse_event(data: Any, where: str = "") -> InventoryEvent:
    """Check one event object; `where` prefixes field names in messages (for example "events[3].")."""
    if not isinstance(data, dict):
        raise EventError(f"{where.rstrip('.') or 'body'} must be a JSON object, got {json.dumps(data)[:80]}")
    unknown = sorted(set(data) - set(EVENT_FIELDS))
    if unknown:
        raise EventError(f"{where}{unknown[0]}: unknown field; allowed: {', '.join(EVENT_FIELDS)}")
    sku = data.get("sku")
    if not isinstance(sku, str) or not sku.strip() or len(sku) > MAX_SKU_LENGTH:
        raise EventError(f"{where}sku must be a non-empty string of at most {MAX_SKU_LENGTH} characters, "
                         f"got {sku!r}")
    quantity, state = data.get("available_quantity"), data.get("state")
    if (quantity is None) == (state is None):
        raise EventError(f"{where}available_quantity or state: give exactly one of them")
    if quantity is not None and not (_is_integer(quantity) and quantity >= 0):
        raise EventError(f"{where}available_quantity must be an integer of 0 or more, got {quantity!r}")
    if state is not None and state not in STATES:
        raise EventError(f"{where}state must be one of {', '.join(sorted(STATES))}, got {state!r}")
    version = data.get("version")
    if version is not None and not (_is_integer(version) and version >= 0):
        raise EventError(f"{where}version must be an integer of 0 or more, got {version!r}")
    timestamp = parse_timestamp(data.get("timestamp"), where)
    return InventoryEvent(sku=sku.strip(), state=state, available_quantity=quantity, version=version,
                          timestamp=timestamp)


def parse_events(body: Any, *, max_events: int) -> list[InventoryEvent]:
    """Check a request body: one event object or a non-empty array of at most `max_events`."""
    if isinstance(body, dict):
        return [parse_event(body)]
    if not isinstance(body, list):
        raise EventError("body must be a JSON object or an array of objects")
    if not body:
        raise EventError("body is an empty array; send at least one event")
    if len(body) > max_events:
        raise EventError(f"body has {len(body)} events, more than inventory.max_batch_events ({max_events}); "
                         "split the batch")
    return [parse_event(item, f"events[{index}].") for index, item in enumerate(body)]


async def inventory_events(request: web.Request) -> web.Response:
    return await receive_events(request, with_records=False)


async def receive_events(request: web.Request, *, with_records: bool) -> web.Response:
    """Check and apply a batch; `with_records` adds the resulting SKU records as a message for sibling workers."""
    denied = check_token(request, required=True)
    if denied is not None:
        return denied
    edgecache = request.app[EDGECACHE_KEY]
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return json_error(400, "body is not valid JSON")
    try:
        events = parse_events(body, max_events=edgecache.settings.inventory.max_batch_events)
    except EventError as exc:
        return json_error(400, str(exc))
    result, records = await edgecache.receive_inventory_events(events)
    admin_logger.debug("inventory events from %s: %s", client_address(request), json.dumps(result))
    if with_records:
        message = InventoryMessage(tuple(records), edgecache.clock())
        return json_response({"result": result, "message": json.loads(message.encode(node=""))})
    return json_response(result)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/events/inventory", inventory_events)

"""POST /events/inventory on the admin listener: one inventory event or a batch of them.

The body is one event object or an array of them:
`{"sku": "SKU-1", "available_quantity": 3, "version": 812, "timestamp": "2024-05-01T12:00:00Z"}`,
with an explicit `"state"` (in_stock, low_stock, out_of_stock, backorder) instead of
the quantity when the producer has it. The whole batch is checked before any event
is applied, so a 400 means nothing changed. The message names the invalid field.
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


def shown(value: Any) -> str:
    """Return a value from a request body as JSON text for an error message, cut to 80 characters."""
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


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
    raise EventError(f"{where}timestamp: invalid value {shown(value)}; "
                     "expected an ISO 8601 date-time string or epoch seconds")


def parse_event(data: Any, where: str = "") -> InventoryEvent:
    """Check one event object; `where` prefixes field names in messages (for example "events[3].").

    Every message reads `<field>: <what is wrong>; expected <what is allowed>`.
    """
    if not isinstance(data, dict):
        raise EventError(f"{where.rstrip('.') or 'body'}: invalid value {shown(data)}; expected a JSON object")
    unknown = sorted(set(data) - set(EVENT_FIELDS))
    if unknown:
        raise EventError(f"{where}{unknown[0]}: unknown field; expected one of {', '.join(EVENT_FIELDS)}")
    sku = data.get("sku")
    expected_sku = f"expected a non-empty string of at most {MAX_SKU_LENGTH} characters"
    if "sku" not in data:
        raise EventError(f"{where}sku: missing; {expected_sku}")
    if isinstance(sku, str) and len(sku) > MAX_SKU_LENGTH:
        raise EventError(f"{where}sku: too long ({len(sku)} characters); {expected_sku}")
    if not isinstance(sku, str) or not sku.strip():
        raise EventError(f"{where}sku: invalid value {shown(sku)}; {expected_sku}")
    quantity, state = data.get("available_quantity"), data.get("state")
    if quantity is None and state is None:
        raise EventError(f"{where}state: missing; expected exactly one of state and available_quantity")
    if quantity is not None and state is not None:
        raise EventError(f"{where}state: given with available_quantity; "
                         "expected exactly one of state and available_quantity")
    if quantity is not None and not (_is_integer(quantity) and quantity >= 0):
        raise EventError(f"{where}available_quantity: invalid value {shown(quantity)}; "
                         "expected an integer of 0 or more")
    if state is not None and state not in STATES:
        raise EventError(f"{where}state: invalid value {shown(state)}; expected one of {', '.join(sorted(STATES))}")
    version = data.get("version")
    if version is not None and not (_is_integer(version) and version >= 0):
        raise EventError(f"{where}version: invalid value {shown(version)}; expected an integer of 0 or more")
    timestamp = parse_timestamp(data.get("timestamp"), where)
    return InventoryEvent(sku=sku.strip(), state=state, available_quantity=quantity, version=version,
                          timestamp=timestamp)


def parse_events(body: Any, *, max_events: int) -> list[InventoryEvent]:
    """Check a request body: one event object or a non-empty array of at most `max_events`."""
    if isinstance(body, dict):
        return [parse_event(body)]
    if not isinstance(body, list):
        raise EventError(f"body: invalid value {shown(body)}; expected a JSON object or an array of objects")
    if not body:
        raise EventError("body: empty array; expected at least one event")
    if len(body) > max_events:
        raise EventError(f"body: {len(body)} events; expected at most {max_events} "
                         "(inventory.max_batch_events), so split the batch")
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

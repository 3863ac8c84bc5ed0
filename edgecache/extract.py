"""SKUs and the availability a stored page claims, read from its HTML.

Two sources, both common on storefronts: schema.org Product JSON-LD (`sku` and
`offers.availability`, with `offers` lists and `@graph` containers) and `data-sku`
attributes, optionally with `data-availability`. Broken JSON is skipped, never raised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

_JSON_LD = re.compile(
    rb"<script[^>]*type\s*=\s*[\"']application/ld\+json[\"'][^>]*>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL
)
_DATA_SKU_TAG = re.compile(rb"<[^>]*\sdata-sku\s*=\s*[\"']([^\"']{1,200})[\"'][^>]*>", re.IGNORECASE)
_DATA_AVAILABILITY = re.compile(rb"\sdata-availability\s*=\s*[\"']([^\"']{1,64})[\"']", re.IGNORECASE)

# schema.org ItemAvailability values mapped to edgecache's availability states.
SCHEMA_AVAILABILITY = {
    "instock": "in_stock",
    "instoreonly": "in_stock",
    "onlineonly": "in_stock",
    "limitedavailability": "low_stock",
    "outofstock": "out_of_stock",
    "soldout": "out_of_stock",
    "discontinued": "out_of_stock",
    "backorder": "backorder",
    "preorder": "backorder",
    "presale": "backorder",
}
STATES = frozenset({"in_stock", "low_stock", "out_of_stock", "backorder"})
UNKNOWN = "unknown"


def availability_state(value: Any) -> str:
    """Map a schema.org availability (URL or bare name) or a state name to a state."""
    if not isinstance(value, str):
        return UNKNOWN
    text = value.strip()
    if text.lower() in STATES:
        return text.lower()
    name = text.rstrip("/").rsplit("/", 1)[-1].lower()
    return SCHEMA_AVAILABILITY.get(name, UNKNOWN)


def extract_claims(body: bytes) -> list[tuple[str, str]]:
    """Return (sku, availability state) pairs claimed by a page, in order of first appearance."""
    claims: dict[str, str] = {}
    for match in _JSON_LD.finditer(body):
        try:
            document = json.loads(match.group(1).decode("utf-8", "replace"))
        except ValueError:
            continue
        for product in _products(document):
            sku = product.get("sku")
            if isinstance(sku, (str, int)) and str(sku):
                state = _offer_state(product.get("offers"))
                if claims.get(str(sku), UNKNOWN) == UNKNOWN:
                    claims[str(sku)] = state
    for match in _DATA_SKU_TAG.finditer(body):
        sku = match.group(1).decode("utf-8", "replace").strip()
        availability = _DATA_AVAILABILITY.search(match.group(0))
        state = availability_state(availability.group(1).decode("ascii", "replace")) if availability else UNKNOWN
        if sku and claims.get(sku, UNKNOWN) == UNKNOWN:
            claims[sku] = state
    return list(claims.items())


def _products(document: Any) -> Iterator[dict[str, Any]]:
    """Yield every object typed Product in a JSON-LD document, however nested."""
    if isinstance(document, list):
        for item in document:
            yield from _products(item)
    elif isinstance(document, dict):
        kind = document.get("@type")
        kinds = kind if isinstance(kind, list) else [kind]
        if "Product" in kinds:
            yield document
        for name in ("@graph", "itemListElement", "item", "hasVariant"):
            if name in document:
                yield from _products(document[name])


def _offer_state(offers: Any) -> str:
    """Return the best availability among offers: any offer in stock makes the SKU available."""
    if isinstance(offers, dict):
        offers = offers.get("offers", [offers]) if offers.get("@type") == "AggregateOffer" else [offers]
    if not isinstance(offers, list):
        return UNKNOWN
    states = [availability_state(offer.get("availability")) for offer in offers if isinstance(offer, dict)]
    for state in ("in_stock", "low_stock", "backorder", "out_of_stock"):
        if state in states:
            return state
    return UNKNOWN

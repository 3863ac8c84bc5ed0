"""Storefront-like pages and a settable clock for the inventory and purge tests."""

from __future__ import annotations

import json
from typing import Any

SCHEMA = "https://schema.org/"
START = 1_700_000_000.0
TOKEN = "test-admin-token"


class Clock:
    """A settable clock in epoch seconds."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def product_json_ld(sku: str, availability: str) -> dict[str, Any]:
    return {
        "@context": "https://schema.org",
        "@type": "Product",
        "sku": sku,
        "name": f"Product {sku}",
        "offers": {"@type": "Offer", "price": "19.99", "priceCurrency": "USD", "availability": SCHEMA + availability},
    }


def page(*documents: Any, extra: str = "") -> bytes:
    """Return an HTML page with one JSON-LD script element per document (str means raw script text)."""
    scripts = "".join(
        f'<script type="application/ld+json">{doc if isinstance(doc, str) else json.dumps(doc)}</script>\n'
        for doc in documents
    )
    return (f"<!doctype html>\n<html><head><title>Shop</title>\n{scripts}</head>\n"
            f"<body><h1>Shop</h1>{extra}</body></html>\n").encode()


def product_page(sku: str, availability: str) -> bytes:
    return page(product_json_ld(sku, availability))


def html_headers(cache_control: str = "max-age=60", **extra: str) -> dict[str, str]:
    return {"Content-Type": "text/html; charset=utf-8", "Cache-Control": cache_control, **extra}


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

"""The demo storefront: the origin that edgecache's demo, tests and benchmarks run against.

Product and category pages carry a strong ETag computed from the body and a
Last-Modified from the newest stock change shown. The app responds to matching
conditional requests with 304. By default these pages send no Cache-Control, so the
cache's own rules decide their TTL. Every HTML response, including 304 and 404, adds
to the counter at /_demo/requests and carries X-Demo-Rendered-At, so tests can count
origin renders.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timezone
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from aiohttp import web

from edgecache.demo.inventory import Inventory
from edgecache.demo.pages import (
    build_filler_corpus,
    padding_html,
    render_category,
    render_home,
    render_not_found,
    render_product,
)

logger = logging.getLogger("edgecache.demo")

INVENTORY_KEY = web.AppKey("inventory", Inventory)
STATIC_DIR = Path(__file__).parent / "static"
STATIC_CACHE_CONTROL = "public, max-age=86400"
STATIC_CONTENT_TYPES = {".css": "text/css", ".js": "text/javascript"}
HTML_CONTENT_TYPE = "text/html"
# Number of products linked from the home page, taken from the start of the catalog.
FEATURED_PRODUCT_COUNT = 12
DEFAULT_PORT = 8081


@dataclass(frozen=True, slots=True)
class StaticAsset:
    """A file under static/, loaded once when the app is created."""

    body: bytes
    content_type: str
    etag: str


@dataclass(frozen=True, slots=True)
class RenderedPage:
    """An HTML page body with the newest change time and surrogate keys of the stock shown."""

    body: str
    newest_timestamp: float | None
    surrogate_keys: tuple[str, ...] = ()


@dataclass(slots=True)
class DemoState:
    """Settings of one demo app and its count of HTML responses."""

    page_bytes: int
    surrogate_keys: bool
    cache_control: str | None
    filler_corpus: str
    static_assets: dict[str, StaticAsset] = field(default_factory=dict)
    rendered_count: int = 0


STATE_KEY = web.AppKey("demo_state", DemoState)


def create_app(
    inventory: Inventory | None = None,
    *,
    change_interval: float | None = 2.0,
    page_bytes: int = 0,
    surrogate_keys: bool = False,
    cache_control: str | None = None,
    seed: int = 1,
) -> web.Application:
    """Build the demo storefront application.

    Without `inventory`, a 200-product catalog is built from `seed`. When
    `change_interval` is not None, a background task makes one random stock change
    every `change_interval` seconds, drawn from `seed`. `page_bytes` > 0 pads product
    pages with description text to about that many bytes. `cache_control` is sent on
    home, product and category pages, including their 304 responses. `surrogate_keys`
    adds a Surrogate-Key header to product and category pages.
    """
    if change_interval is not None and change_interval <= 0:
        raise ValueError(
            f"change_interval must be a positive number of seconds or None, got {change_interval}"
        )
    if page_bytes < 0:
        raise ValueError(f"page_bytes must be 0 (no padding) or a positive size, got {page_bytes}")

    app = web.Application()
    app[INVENTORY_KEY] = inventory if inventory is not None else Inventory(seed=seed)
    app[STATE_KEY] = DemoState(
        page_bytes=page_bytes,
        surrogate_keys=surrogate_keys,
        cache_control=cache_control,
        # Twice the page size, so that products start their padding at different offsets.
        filler_corpus=build_filler_corpus(2 * page_bytes, seed) if page_bytes else "",
        static_assets=load_static_assets(),
    )
    if change_interval is not None:
        app.cleanup_ctx.append(_inventory_changes_context(change_interval, seed))

    app.router.add_get("/", _home_page)
    app.router.add_get("/c/{category}", _category_page)
    app.router.add_get("/static/{name}", _static_file)
    app.router.add_get("/api/sku/{sku}", _get_sku)
    app.router.add_post("/api/sku/{sku}", _post_sku)
    app.router.add_get("/_demo/requests", _rendered_count)
    app.router.add_get("/{slug}/p", _product_page)
    return app


def _inventory_changes_context(
    interval: float, seed: int
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def run_inventory_changes(app: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(
            app[INVENTORY_KEY].run_changes(interval, seed=seed, stop=stop),
            name="edgecache-demo-inventory-changes",
        )
        yield
        stop.set()
        await task

    return run_inventory_changes


def load_static_assets(directory: Path = STATIC_DIR) -> dict[str, StaticAsset]:
    """Load the CSS and JS files of `directory`, keyed by file name."""
    assets: dict[str, StaticAsset] = {}
    for path in sorted(directory.iterdir()):
        content_type = STATIC_CONTENT_TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            continue
        body = path.read_bytes()
        assets[path.name] = StaticAsset(body, content_type, strong_etag(body))
    return assets


def strong_etag(body: bytes) -> str:
    """Return a strong entity tag derived from `body` alone."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Return whether an If-None-Match value matches `etag`.

    Uses the weak comparison that RFC 9110 section 13.1.2 requires for If-None-Match,
    so W/"x" matches "x". A malformed list item simply does not match.
    """
    if if_none_match.strip() == "*":
        return True
    opaque_tag = etag.removeprefix("W/")
    for item in if_none_match.split(","):
        if item.strip().removeprefix("W/") == opaque_tag:
            return True
    return False


def is_not_modified(request: web.Request, etag: str, last_modified: float | None) -> bool:
    """Evaluate If-None-Match, or If-Modified-Since when If-None-Match is absent.

    Follows the precedence of RFC 9110 section 13.2.2. An unparsable
    If-Modified-Since date is ignored.
    """
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        return etag_matches(if_none_match, etag)
    if_modified_since = request.headers.get("If-Modified-Since")
    if if_modified_since is None or last_modified is None:
        return False
    try:
        since_date = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False
    # parsedate_to_datetime returns a naive datetime for a "-0000" zone, which means UTC.
    since = since_date.replace(tzinfo=since_date.tzinfo or timezone.utc).timestamp()
    # Last-Modified has whole-second resolution, so compare whole seconds.
    return int(last_modified) <= since


def _page_response(request: web.Request, page: RenderedPage) -> web.Response:
    state = request.app[STATE_KEY]
    state.rendered_count += 1
    body = page.body.encode()
    etag = strong_etag(body)
    headers = {"ETag": etag, "X-Demo-Rendered-At": repr(time.time())}
    if page.newest_timestamp is not None:
        headers["Last-Modified"] = formatdate(page.newest_timestamp, usegmt=True)
    if state.cache_control is not None:
        headers["Cache-Control"] = state.cache_control
    if state.surrogate_keys and page.surrogate_keys:
        headers["Surrogate-Key"] = " ".join(page.surrogate_keys)

    if is_not_modified(request, etag, page.newest_timestamp):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=body, content_type=HTML_CONTENT_TYPE, charset="utf-8", headers=headers
    )


def _not_found_page(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.rendered_count += 1
    body = render_not_found(request.path, request.app[INVENTORY_KEY].categories())
    return web.Response(
        status=404,
        text=body,
        content_type=HTML_CONTENT_TYPE,
        headers={"X-Demo-Rendered-At": repr(time.time())},
    )


def _sku_not_found(sku: str) -> web.Response:
    return web.json_response(
        {"error": f"unknown SKU {sku!r}, expected a catalog SKU like 'SKU-00001'"}, status=404
    )


async def _home_page(request: web.Request) -> web.Response:
    inventory = request.app[INVENTORY_KEY]
    featured = inventory.products()[:FEATURED_PRODUCT_COUNT]
    # The home page shows no stock, so it has no Last-Modified or surrogate keys.
    body = render_home(inventory.categories(), featured)
    return _page_response(request, RenderedPage(body, newest_timestamp=None))


async def _product_page(request: web.Request) -> web.Response:
    inventory = request.app[INVENTORY_KEY]
    state = request.app[STATE_KEY]
    product = inventory.product_by_slug(request.match_info["slug"])
    if product is None:
        return _not_found_page(request)

    stock = inventory.stock(product.sku)
    categories = inventory.categories()
    body = render_product(product, stock, categories)
    if state.page_bytes > 0:
        missing_bytes = state.page_bytes - len(body.encode())
        padding = padding_html(state.filler_corpus, product.sku, missing_bytes)
        if padding:
            body = render_product(product, stock, categories, padding=padding)

    keys = (f"sku:{product.sku}", f"product:{product.slug}")
    return _page_response(request, RenderedPage(body, stock.timestamp, keys))


async def _category_page(request: web.Request) -> web.Response:
    inventory = request.app[INVENTORY_KEY]
    category = request.match_info["category"]
    products = inventory.products_in(category)
    if not products:
        return _not_found_page(request)

    listing = [(product, inventory.stock(product.sku)) for product in products]
    body = render_category(category, listing, inventory.categories())
    newest = max(stock.timestamp for _, stock in listing)
    # NOTE: the header grows by about 14 bytes per product, so categories of more than
    # about 500 products exceed aiohttp's default 8190-byte limit on a client's header field.
    keys = (f"category:{category}", *(f"sku:{product.sku}" for product in products))
    return _page_response(request, RenderedPage(body, newest, keys))


async def _static_file(request: web.Request) -> web.Response:
    asset = request.app[STATE_KEY].static_assets.get(request.match_info["name"])
    if asset is None:
        message = f"static file {request.match_info['name']!r} not found"
        return web.Response(status=404, text=message)

    headers = {"ETag": asset.etag, "Cache-Control": STATIC_CACHE_CONTROL}
    if etag_matches(request.headers.get("If-None-Match", ""), asset.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=asset.body, content_type=asset.content_type, charset="utf-8", headers=headers
    )


async def _get_sku(request: web.Request) -> web.Response:
    sku = request.match_info["sku"]
    inventory = request.app[INVENTORY_KEY]
    if inventory.product_by_sku(sku) is None:
        return _sku_not_found(sku)
    return web.json_response(inventory.truth(sku))


async def _post_sku(request: web.Request) -> web.Response:
    sku = request.match_info["sku"]
    inventory = request.app[INVENTORY_KEY]
    if inventory.product_by_sku(sku) is None:
        return _sku_not_found(sku)

    try:
        payload = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = None
    quantity = payload.get("available_quantity") if isinstance(payload, dict) else None
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        message = (
            'request body must be a JSON object like {"available_quantity": 3} '
            f"with an integer of 0 or more, got {quantity!r}"
        )
        return web.json_response({"error": message}, status=400)

    return web.json_response(inventory.set_quantity(sku, quantity).to_dict())


async def _rendered_count(request: web.Request) -> web.Response:
    return web.json_response({"count": request.app[STATE_KEY].rendered_count})


def main(argv: list[str] | None = None) -> None:
    """Serve the demo storefront on 127.0.0.1 until interrupted."""
    parser = argparse.ArgumentParser(description="Run the edgecache demo storefront origin.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port on 127.0.0.1")
    parser.add_argument("--products", type=int, default=200, help="number of catalog products")
    parser.add_argument("--seed", type=int, default=1, help="seed of the catalog and stock changes")
    parser.add_argument(
        "--change-interval", type=float, default=2.0,
        help="seconds between random stock changes, or 0 for none",
    )
    parser.add_argument(
        "--page-bytes", type=int, default=0, help="pad product pages to about this many bytes"
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(
        Inventory(product_count=args.products, seed=args.seed),
        change_interval=args.change_interval or None,
        page_bytes=args.page_bytes,
        seed=args.seed,
    )
    web.run_app(app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()

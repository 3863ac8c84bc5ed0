"""HTML rendering of the demo storefront's pages.

Every function here is pure: the same products and stock levels give the same bytes,
which keeps the origin's ETags stable between renders.
"""

from __future__ import annotations

import html
import json
import random
import zlib
from collections.abc import Sequence

from edgecache.demo.inventory import AvailabilityState, Product, StockChange

STORE_NAME = "Edgecache Demo Store"
SCHEMA_AVAILABILITY: dict[AvailabilityState, str] = {
    AvailabilityState.IN_STOCK: "https://schema.org/InStock",
    AvailabilityState.LOW_STOCK: "https://schema.org/LimitedAvailability",
    AvailabilityState.OUT_OF_STOCK: "https://schema.org/OutOfStock",
    AvailabilityState.BACKORDER: "https://schema.org/BackOrder",
}
BUY_LABELS: dict[AvailabilityState, str] = {
    AvailabilityState.IN_STOCK: "Add to cart",
    AvailabilityState.LOW_STOCK: "Add to cart",
    AvailabilityState.OUT_OF_STOCK: "Sold out",
    AvailabilityState.BACKORDER: "Backorder",
}
FILLER_WORDS = (
    "breathable", "stitched", "recycled", "waterproof", "lightweight", "durable", "seam",
    "lining", "fabric", "leather", "canvas", "mesh", "sole", "strap", "zipper", "pocket",
    "comfort", "weather", "travel", "everyday", "trail", "city", "fit", "finish", "tested",
    "warranty", "repair", "fibre", "cotton", "wool", "nylon", "buckle", "grip", "support",
)
# Markup that wraps the padding text, counted when sizing the padding.
FILLER_OPEN = '<p class="filler">'
FILLER_CLOSE = "</p>"


def format_price(price_cents: int) -> str:
    """Format cents as a plain decimal string like "89.99", as schema.org prices expect."""
    return f"{price_cents // 100}.{price_cents % 100:02d}"


def describe_availability(stock: StockChange) -> str:
    """Describe a stock level in words for shoppers."""
    if stock.state is AvailabilityState.LOW_STOCK:
        return f"Only {stock.available_quantity} left"
    if stock.state is AvailabilityState.IN_STOCK:
        return "In stock"
    if stock.state is AvailabilityState.BACKORDER:
        return "Available on backorder"
    return "Out of stock"


def product_json_ld(product: Product, stock: StockChange) -> str:
    """Return the schema.org Product JSON-LD of a product, safe to embed in a script element."""
    document = {
        "@context": "https://schema.org",
        "@type": "Product",
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "category": product.category,
        "offers": {
            "@type": "Offer",
            "price": format_price(product.price_cents),
            "priceCurrency": "USD",
            "availability": SCHEMA_AVAILABILITY[stock.state],
            "url": f"/{product.slug}/p",
        },
    }
    # "</" would end the script element early, so it is written as "<\/", which
    # JSON parsers read as the same two characters.
    return json.dumps(document, separators=(",", ":")).replace("</", "<\\/")


def build_filler_corpus(size: int, seed: int = 1) -> str:
    """Build at least `size` characters of deterministic description text in sentences."""
    rng = random.Random(seed)
    sentences: list[str] = []
    length = 0
    while length < size:
        words = [rng.choice(FILLER_WORDS) for _ in range(rng.randint(8, 16))]
        sentence = " ".join(words).capitalize() + ". "
        sentences.append(sentence)
        length += len(sentence)
    return "".join(sentences)


def filler_text(corpus: str, key: str, length: int) -> str:
    """Cut about `length` characters of `corpus` at a start chosen by `key`.

    The cut starts at a sentence and ends at a word boundary, so the result is up to
    one word shorter than `length`. It is shorter still when the cut reaches the end
    of the corpus.
    """
    if length <= 0:
        return ""
    offset = zlib.crc32(key.encode()) % max(1, len(corpus) - length)
    sentence_end = corpus.find(". ", offset)
    start = sentence_end + 2 if sentence_end != -1 else 0
    text = corpus[start : start + length]
    if len(text) == length and " " in text:
        text = text[: text.rfind(" ")]
    return text.strip()


def padding_html(corpus: str, key: str, length: int) -> str:
    """Return a filler paragraph of about `length` bytes, or "" when `length` is too small."""
    text_length = length - len(FILLER_OPEN) - len(FILLER_CLOSE)
    if text_length <= 0:
        return ""
    return f"{FILLER_OPEN}{filler_text(corpus, key, text_length)}{FILLER_CLOSE}"


def render_layout(
    title: str, main_html: str, categories: Sequence[str], *, head_extra: str = ""
) -> str:
    """Wrap a page's main content in the shared document, header and footer."""
    nav = "".join(
        f'<a href="/c/{html.escape(name)}">{html.escape(name.capitalize())}</a>'
        for name in categories
    )
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)} | {STORE_NAME}</title>\n"
        '<link rel="stylesheet" href="/static/style.css">\n'
        f"{head_extra}</head>\n<body>\n"
        f'<header class="site"><a class="brand" href="/">{STORE_NAME}</a>'
        f"<nav>{nav}</nav></header>\n"
        f"<main>\n{main_html}</main>\n"
        '<footer class="site">Demo origin for edgecache. Prices in USD.</footer>\n'
        '<script src="/static/app.js" defer></script>\n'
        "</body>\n</html>\n"
    )


def render_product(
    product: Product, stock: StockChange, categories: Sequence[str], *, padding: str = ""
) -> str:
    """Render a product page with its JSON-LD block and a buy button.

    The button stays enabled when sold out, because static/app.js uses it to fetch the
    live stock, which may differ from a cached page.
    """
    state = stock.state.value
    main_html = (
        '<article class="product">\n'
        f'<p class="crumbs"><a href="/c/{html.escape(product.category)}">'
        f"{html.escape(product.category.capitalize())}</a></p>\n"
        f"<h1>{html.escape(product.name)}</h1>\n"
        f'<p class="sku">{html.escape(product.sku)}</p>\n'
        f'<p class="price">${format_price(product.price_cents)}</p>\n'
        f'<p class="availability {state}">{describe_availability(stock)}</p>\n'
        f'<button class="buy" type="button" data-sku="{html.escape(product.sku)}" '
        f'data-availability="{state}">{BUY_LABELS[stock.state]}</button>\n'
        '<p class="live" hidden></p>\n'
        f'<section class="description">\n<p>{html.escape(product.description)}</p>\n'
        f"{padding}</section>\n"
        "</article>\n"
    )
    json_ld = f'<script type="application/ld+json">{product_json_ld(product, stock)}</script>\n'
    return render_layout(product.name, main_html, categories, head_extra=json_ld)


def render_category(
    category: str,
    listing: Sequence[tuple[Product, StockChange]],
    categories: Sequence[str],
) -> str:
    """Render a category page with one card per product, carrying its SKU and state."""
    cards = "".join(
        f'<li class="card" data-sku="{html.escape(product.sku)}" '
        f'data-availability="{stock.state.value}">'
        f'<a href="/{html.escape(product.slug)}/p">{html.escape(product.name)}</a>'
        f'<span class="price">${format_price(product.price_cents)}</span>'
        f'<span class="availability {stock.state.value}">{describe_availability(stock)}</span>'
        "</li>\n"
        for product, stock in listing
    )
    main_html = (
        f"<h1>{html.escape(category.capitalize())}</h1>\n"
        f'<p class="count">{len(listing)} products</p>\n'
        f'<ul class="grid">\n{cards}</ul>\n'
    )
    return render_layout(category.capitalize(), main_html, categories)


def render_home(categories: Sequence[str], featured: Sequence[Product]) -> str:
    """Render the home page: category links and featured products without stock."""
    category_links = "".join(
        f'<li><a href="/c/{html.escape(name)}">{html.escape(name.capitalize())}</a></li>'
        for name in categories
    )
    product_links = "".join(
        f'<li class="card"><a href="/{html.escape(product.slug)}/p">'
        f"{html.escape(product.name)}</a>"
        f'<span class="price">${format_price(product.price_cents)}</span></li>\n'
        for product in featured
    )
    main_html = (
        "<h1>Welcome</h1>\n"
        f'<h2>Categories</h2>\n<ul class="categories">{category_links}</ul>\n'
        f'<h2>Featured</h2>\n<ul class="grid">\n{product_links}</ul>\n'
    )
    return render_layout("Home", main_html, categories)


def render_not_found(path: str, categories: Sequence[str]) -> str:
    """Render the 404 page for a path that names no product or category."""
    main_html = (
        "<h1>Not found</h1>\n"
        f"<p>No product or category lives at <code>{html.escape(path)}</code>.</p>\n"
        '<p><a href="/">Back to the store</a></p>\n'
    )
    return render_layout("Not found", main_html, categories)

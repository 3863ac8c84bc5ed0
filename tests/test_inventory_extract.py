"""SKUs and claimed availability read from storefront-like HTML."""

from __future__ import annotations

import json

from edgecache.extract import extract_claims
from inventory_pages import SCHEMA, page, product_json_ld


def test_single_product() -> None:
    assert extract_claims(page(product_json_ld("SKU-1", "InStock"))) == [("SKU-1", "in_stock")]


def test_several_products_in_order() -> None:
    body = page(product_json_ld("SKU-1", "OutOfStock"), product_json_ld("SKU-2", "LimitedAvailability"))
    assert extract_claims(body) == [("SKU-1", "out_of_stock"), ("SKU-2", "low_stock")]


def test_offers_list_best_wins() -> None:
    product = product_json_ld("SKU-1", "InStock")
    product["offers"] = [{"@type": "Offer", "availability": SCHEMA + "OutOfStock", "seller": "north"},
                         {"@type": "Offer", "availability": SCHEMA + "InStock", "seller": "south"}]
    assert extract_claims(page(product)) == [("SKU-1", "in_stock")]


def test_aggregate_offer() -> None:
    product = product_json_ld("SKU-1", "InStock")
    product["offers"] = {"@type": "AggregateOffer", "lowPrice": "10", "highPrice": "20",
                         "offers": [{"@type": "Offer", "availability": "http://schema.org/SoldOut"}]}
    assert extract_claims(page(product)) == [("SKU-1", "out_of_stock")]


def test_graph_container() -> None:
    graph = {"@context": "https://schema.org", "@graph": [
        {"@type": "BreadcrumbList", "itemListElement": []},
        {"@type": ["Product", "IndividualProduct"], "sku": "SKU-7",
         "offers": {"@type": "Offer", "availability": "BackOrder"}},
        {"@type": "WebPage", "name": "Trail shoes"},
    ]}
    assert extract_claims(page(graph)) == [("SKU-7", "backorder")]


def test_item_list_of_products() -> None:
    listing = {"@type": "ItemList", "itemListElement": [
        {"@type": "ListItem", "position": 1, "item": product_json_ld("SKU-1", "InStock")},
        {"@type": "ListItem", "position": 2, "item": product_json_ld("SKU-2", "OutOfStock")},
    ]}
    assert extract_claims(page(listing)) == [("SKU-1", "in_stock"), ("SKU-2", "out_of_stock")]


def test_broken_json_skipped() -> None:
    body = page('{"@type": "Product", "sku": "SKU-1", ', product_json_ld("SKU-2", "InStock"))
    assert extract_claims(body) == [("SKU-2", "in_stock")]


def test_numeric_sku_and_missing_offers() -> None:
    product = {"@type": "Product", "sku": 12345, "name": "No offers"}
    assert extract_claims(page(product)) == [("12345", "unknown")]


def test_data_sku_attributes() -> None:
    cards = ('<li class="card" data-sku="SKU-3" data-availability="out_of_stock">A</li>'
             "<li class='card' data-sku='SKU-4'>B</li>")
    assert extract_claims(page(extra=cards)) == [("SKU-3", "out_of_stock"), ("SKU-4", "unknown")]


def test_json_ld_wins_over_data_sku() -> None:
    button = '<button data-sku="SKU-1" data-availability="out_of_stock">Buy</button>'
    assert extract_claims(page(product_json_ld("SKU-1", "InStock"), extra=button)) == [("SKU-1", "in_stock")]


def test_script_type_case_and_attributes() -> None:
    body = (b'<script id="ld" TYPE="application/ld+json" nonce="x">'
            + json.dumps(product_json_ld("SKU-9", "PreOrder")).encode() + b"</script >")
    assert extract_claims(body) == [("SKU-9", "backorder")]


def test_no_products() -> None:
    assert extract_claims(page({"@type": "Organization", "name": "Shop"})) == []

"""The Grafana dashboard queries only metrics that /metrics exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from conftest import admin_url, proxy_url

DASHBOARD = Path(__file__).resolve().parent.parent / "config" / "grafana" / "edgecache.json"
METRIC_NAME = re.compile(r"\bedgecache_[a-z_]+")


def _queried_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    names = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names.update(METRIC_NAME.findall(target["expr"]))
    return {re.sub(r"_bucket$", "", name) for name in names}


async def test_grafana_queries_exposed_metrics(origin, edgecache, client: aiohttp.ClientSession) -> None:
    async with client.get(proxy_url(edgecache, "/shoe/p")) as response:
        await response.read()
    async with client.get(admin_url(edgecache, "/metrics")) as response:
        text = await response.text()
    exposed = set()
    for family in text_string_to_metric_families(text):
        exposed.update(sample.name for sample in family.samples)
        # A labelled counter with no samples yet still declares its family.
        exposed.add(family.name + "_total" if family.type == "counter" else family.name)
    missing = _queried_metrics() - exposed
    assert missing == set()


def test_grafana_panels_have_descriptions() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        assert panel["description"], panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]

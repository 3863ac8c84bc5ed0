"""The reconciliation sampler's pacing, and its figures in /stats and /metrics."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from conftest import admin_url, proxy_url
from inventory_pages import html_headers, product_page


class ProductOrigin:
    """A product page with an ETag per availability; counts conditional and full requests."""

    def __init__(self, availability: str) -> None:
        self.availability = availability
        self.conditional = 0
        self.full = 0
        # Seconds the fake clock advances per request, standing in for origin latency.
        self.latency = 0.0
        self.clock: list[float] = [0.0]

    async def handle(self, request: web.Request) -> web.Response:
        self.clock[0] += self.latency
        etag = f'"{self.availability}"'
        if request.headers.get("If-None-Match") == etag:
            self.conditional += 1
            return web.Response(status=304, headers={"ETag": etag, "Cache-Control": "max-age=60"})
        self.full += 1
        return web.Response(body=product_page("A", self.availability), headers=html_headers(ETag=etag))


class Pacer:
    """A fake clock and sleep for `Reconciler.run`: records each pause and stops the loop after `limit`."""

    def __init__(self, clock: list[float], limit: int) -> None:
        self.clock = clock
        self.limit = limit
        self.pauses: list[float] = []
        self.done = asyncio.Event()

    def now(self) -> float:
        return self.clock[0]

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(round(seconds, 6))
        self.clock[0] += seconds
        if len(self.pauses) >= self.limit:
            self.done.set()
            await asyncio.Event().wait()


async def start_sampler(origin, make_edgecache, client, product: ProductOrigin, rate: float):
    origin.handler("/a/p", product.handle)
    edgecache = await make_edgecache(origin.url, {"reconcile": {"requests_per_second": rate}})
    # The sampler edgecache started paces itself by the real clock: stop it, so only the test's own run checks.
    [own] = [task for task in edgecache._tasks if task.get_name() == "edgecache-reconcile"]
    own.cancel()
    await asyncio.gather(own, return_exceptions=True)
    async with client.get(proxy_url(edgecache, "/a/p")) as response:
        await response.read()
    return edgecache


async def run_paced(edgecache, pacer: Pacer) -> None:
    task = asyncio.create_task(edgecache.reconciler.run(clock=pacer.now, sleep=pacer.sleep))
    try:
        async with asyncio.timeout(10):
            await pacer.done.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_sampler_one_check_per_period(origin, make_edgecache, client) -> None:
    product = ProductOrigin("InStock")
    edgecache = await start_sampler(origin, make_edgecache, client, product, rate=4.0)
    pacer = Pacer(product.clock, limit=3)
    await run_paced(edgecache, pacer)
    assert pacer.pauses == [0.25, 0.25, 0.25]
    assert product.conditional == 3
    assert product.full == 1
    assert edgecache.stats.reconcile_checks == 3


async def test_sampler_check_time_counts(origin, make_edgecache, client) -> None:
    product = ProductOrigin("InStock")
    edgecache = await start_sampler(origin, make_edgecache, client, product, rate=4.0)
    product.latency = 0.1
    pacer = Pacer(product.clock, limit=2)
    await run_paced(edgecache, pacer)
    assert pacer.pauses == [0.15, 0.15]
    assert product.conditional == 2


async def test_sampler_slow_origin_no_pause(origin, make_edgecache, client) -> None:
    product = ProductOrigin("InStock")
    edgecache = await start_sampler(origin, make_edgecache, client, product, rate=4.0)
    product.latency = 0.4
    pacer = Pacer(product.clock, limit=2)
    await run_paced(edgecache, pacer)
    assert pacer.pauses == [0.0, 0.0]
    assert product.conditional == 2


async def test_sampler_figures_exact(origin, make_edgecache, client) -> None:
    product = ProductOrigin("InStock")
    edgecache = await start_sampler(origin, make_edgecache, client, product, rate=4.0)
    assert await edgecache.reconciler.check_next() is True
    product.availability = "OutOfStock"
    assert await edgecache.reconciler.check_next() is True

    async with client.get(admin_url(edgecache, "/stats")) as response:
        stats = await response.json()
    assert stats["reconcile"] == {"checks": 2, "mismatches": 1, "errors": 0}

    async with client.get(admin_url(edgecache, "/metrics")) as response:
        text = await response.text()
    samples = {sample.name: sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name.startswith("edgecache_reconcile_")}
    assert samples == {
        "edgecache_reconcile_checks_total": 2.0,
        "edgecache_reconcile_mismatches_total": 1.0,
        "edgecache_reconcile_errors_total": 0.0,
    }
    assert product.conditional == 1
    assert product.full == 2

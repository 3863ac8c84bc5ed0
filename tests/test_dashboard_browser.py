"""The dashboard in headless Chromium, driven over the DevTools protocol, in front of the demo storefront."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edgecache.commands import DEMO_SETTINGS
from edgecache.demo.app import create_app
from edgecache.demo.inventory import Inventory

from conftest import admin_url, proxy_url
from inventory_pages import TOKEN, bearer
from redis_process import redis_server  # noqa: F401
from worker_instance import running

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
# Seconds to wait for Chromium to start and for the page to draw its charts.
START_TIMEOUT = 20.0
RENDER_TIMEOUT = 15.0
PRODUCT_LINK = re.compile(r'href="(/[a-z0-9-]+/p)"')

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


class DevTools:
    """A minimal DevTools protocol client for one page target."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.events: list[dict[str, Any]] = []
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.socket:
            data = json.loads(message.data)
            future = self._pending.pop(data.get("id", -1), None)
            if future is not None:
                future.set_result(data)
            else:
                self.events.append(data)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        await self.socket.send_json({"id": self._next_id, "method": method, "params": params})
        reply = await asyncio.wait_for(future, START_TIMEOUT)
        assert "error" not in reply, f"{method} failed: {reply['error']}"
        return reply["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def console_errors(self) -> list[str]:
        errors = []
        for event in self.events:
            params = event.get("params", {})
            if event.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(" ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"]))
            elif event.get("method") == "Runtime.exceptionThrown":
                errors.append(json.dumps(params["exceptionDetails"])[:500])
            elif event.get("method") == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(f"{params['entry'].get('url', '')}: {params['entry']['text']}")
        return errors

    async def close(self) -> None:
        await self.socket.close()
        self._reader.cancel()


async def _devtools_port(profile: Path, process: asyncio.subprocess.Process) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    while asyncio.get_running_loop().time() < deadline:
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().splitlines()[0])
        if process.returncode is not None:
            break
        await asyncio.sleep(0.05)
    raise TimeoutError(f"chromium did not open its DevTools port within {START_TIMEOUT} s")


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[DevTools]:
    profile = tmp_path / "chromium-profile"
    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    session = aiohttp.ClientSession()
    try:
        port = await _devtools_port(profile, process)
        async with session.put(f"http://127.0.0.1:{port}/json/new?about:blank") as response:
            target = await response.json()
        socket = await session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        devtools = DevTools(socket)
        for domain in ("Runtime", "Log", "Page", "Network"):
            await devtools.send(f"{domain}.enable")
        yield devtools
        await devtools.close()
    finally:
        await session.close()
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def _drive_demo_traffic(client: aiohttp.ClientSession, edgecache) -> None:
    async with client.get(proxy_url(edgecache, "/")) as response:
        products = sorted(set(PRODUCT_LINK.findall(await response.text())))[:8]
    assert products, "the demo home page links no product pages"
    for round_number in range(3):
        for index, path in enumerate(products):
            async with client.get(proxy_url(edgecache, path)) as response:
                await response.read()
            if index % 3 == 0:
                async with client.get(proxy_url(edgecache, f"{path}?utm_source=mail{round_number}")) as response:
                    await response.read()
    async with client.get(proxy_url(edgecache, "/static/missing.css")) as response:
        await response.read()


async def _wait_for_charts(page: DevTools) -> None:
    ready = ("Number(document.body.dataset.rendered || 0) >= 1"
             " && document.querySelectorAll('#chart-rates .series').length > 0"
             " && document.querySelectorAll('#chart-age .series').length > 0"
             " && document.querySelector('#top-bypassed tbody td').textContent.startsWith('/')")
    deadline = asyncio.get_running_loop().time() + RENDER_TIMEOUT
    while not await page.evaluate(ready):
        assert asyncio.get_running_loop().time() < deadline, "the dashboard did not draw its charts"
        await asyncio.sleep(0.1)


async def _screenshot(page: DevTools, name: str, *, width: int, height: int, mobile: bool) -> None:
    await page.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                    mobile=mobile)
    await page.evaluate("window.dispatchEvent(new Event('resize'))")
    content_height = await page.evaluate("document.documentElement.scrollHeight")
    await page.send("Emulation.setDeviceMetricsOverride", width=width, height=content_height,
                    deviceScaleFactor=1, mobile=mobile)
    await page.evaluate("window.dispatchEvent(new Event('resize'))")
    shot = await page.send("Page.captureScreenshot", format="png")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / name).write_bytes(base64.b64decode(shot["data"]))


async def _serve_known_stale(client: aiohttp.ClientSession, edgecache, inventory: Inventory) -> None:
    """Restock a sold-out product whose page is cached, then request the page once: one known-stale response."""
    product = inventory.products()[0]
    path = f"/{product.slug}/p"
    change = inventory.set_quantity(product.sku, 20)
    event = {"sku": product.sku, "available_quantity": 20, "version": change.version}
    async with client.post(admin_url(edgecache, "/events/inventory"), json=event, headers=bearer()) as response:
        assert response.status == 200
        assert (await response.json())["purged"] == 1
    async with client.get(proxy_url(edgecache, path)) as response:
        await response.read()
        assert response.headers["X-Cache"] == "STALE"


async def test_dashboard_renders_demo_traffic(aiohttp_server, make_edgecache, client, page: DevTools) -> None:
    inventory = Inventory()
    sold_out = inventory.products()[0]
    inventory.set_quantity(sold_out.sku, 0)
    storefront = await aiohttp_server(create_app(inventory, change_interval=None), host="127.0.0.1")
    # No refetch after events, so the restocked page is served stale once and counted as known stale.
    settings = {**DEMO_SETTINGS, "admin": {"token": TOKEN}, "inventory": {"refresh_on_event": False}}
    edgecache = await make_edgecache(str(storefront.make_url("")), settings)
    await _drive_demo_traffic(client, edgecache)
    async with client.get(proxy_url(edgecache, f"/{sold_out.slug}/p")) as response:
        await response.read()
    await _serve_known_stale(client, edgecache, inventory)
    await edgecache.proxy.close()

    await page.send("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
    await page.send("Page.navigate", url=admin_url(edgecache, "/"))
    await _wait_for_charts(page)

    assert await page.evaluate("document.getElementById('ratio').textContent") != "–"
    assert await page.evaluate("document.getElementById('known-stale').firstChild.textContent") == "1"
    assert await page.evaluate("document.querySelector('#known-stale .unit').textContent") == "responses"
    assert await page.evaluate("document.getElementById('known-stale-sub').textContent") == \
        "claimed unavailable in stock 1"
    assert await page.evaluate("document.querySelector('#lag .unit').textContent") in ("ms", "s")
    assert (await page.evaluate("document.getElementById('lag-sub').textContent")).startswith("p50 ")
    async with client.get(admin_url(edgecache, "/stats")) as response:
        stats = await response.json()
    fill = await page.evaluate("Array.from(document.querySelectorAll('#fill dd'), (cell) => cell.textContent)")
    assert fill[0] == str(stats["cache"]["entries"])
    assert fill[2] == "0"
    assert await page.evaluate("document.querySelectorAll('#chart-latency rect.series').length") == 3
    await _screenshot(page, "dashboard-laptop.png", width=1280, height=900, mobile=False)
    await _screenshot(page, "dashboard-phone.png", width=390, height=844, mobile=True)
    overflow = await page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert overflow is False
    assert page.console_errors() == []
    requested = {event["params"]["request"]["url"] for event in page.events
                 if event.get("method") == "Network.requestWillBeSent"}
    assert admin_url(edgecache, "/stats") in requested
    assert {url for url in requested if not url.startswith((admin_url(edgecache, "/"), "data:"))} == set()


async def test_dashboard_without_lookups(origin, make_edgecache, client, page: DevTools) -> None:
    edgecache = await make_edgecache(origin.url)
    async with client.get(proxy_url(edgecache, "/shoe/p?x=1")) as response:
        await response.read()
        assert response.headers["X-Cache"] == "BYPASS"

    await page.send("Page.navigate", url=admin_url(edgecache, "/"))
    deadline = asyncio.get_running_loop().time() + RENDER_TIMEOUT
    while not await page.evaluate("Number(document.body.dataset.rendered || 0) >= 1"):
        assert asyncio.get_running_loop().time() < deadline, "the dashboard did not render"
        await asyncio.sleep(0.1)

    assert await page.evaluate("document.getElementById('ratio').textContent") == "no data"
    assert await page.evaluate("document.querySelector('#ratio .nodata') !== null") is True
    assert await page.evaluate("document.getElementById('ratio-sub').textContent") == \
        "last minute · 5 min – · total –"
    assert page.console_errors() == []


async def test_dashboard_through_supervisor(origin, redis_server, client, page: DevTools) -> None:
    env = {"EDGECACHE_ADMIN_TOKEN": TOKEN, "EDGECACHE_CACHE_SHARED_URL": redis_server.url}
    async with running(origin, client, env=env) as instance:
        async with client.get(instance.proxy + "/shoe/p") as response:
            await response.read()

        await page.send("Page.navigate", url=instance.admin + "/")
        rows = ("Array.from(document.querySelectorAll('#scale dt, #scale dd')).map((node) => node.textContent)")
        deadline = asyncio.get_running_loop().time() + RENDER_TIMEOUT
        while not await page.evaluate("Number(document.body.dataset.rendered || 0) >= 1"):
            assert asyncio.get_running_loop().time() < deadline, "the dashboard did not render"
            await asyncio.sleep(0.1)

        assert await page.evaluate(rows) == ["shared tier", "up", "Redis lookups", "0 hits · 1 misses",
                                             "Redis failures", "0", "workers", "2 of 2 responding · 0 restarts"]
        assert await page.evaluate("document.getElementById('scale-panel').hidden") is False
        # The style sheet applied, so the supervisor passed it on as text/css.
        assert await page.evaluate("getComputedStyle(document.querySelector('.panel')).borderRadius") == "8px"
        assert page.console_errors() == []

"""Time edgecache's own share of a cache hit: Proxy.handle on a stored entry, without sockets.

Usage: python bench/hit_micro.py [BODY_BYTES] [REQUESTS]

The request is built with aiohttp's make_mocked_request and the entry is put into
the store directly, so the figure excludes aiohttp's HTTP parser, header
serialization and the socket writes; the access log goes to a discarded stream.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time

from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict, CIMultiDictProxy

from edgecache.config import build_settings
from edgecache.entry import Entry
from edgecache.key import build_key
from edgecache.log_output import CachedTimeFormatter, PeriodicFlushHandler
from edgecache.server import Edgecache

PATHS = 1000


def store_pages(edgecache: Edgecache, body: bytes, now: float) -> None:
    headers = CIMultiDictProxy(CIMultiDict({
        "Content-Type": "text/html; charset=utf-8", "Cache-Control": "public, max-age=300",
        "ETag": '"6553f100-800"', "Last-Modified": "Tue, 14 Nov 2023 22:13:20 GMT",
        "Date": "Fri, 04 Dec 2026 20:00:00 GMT", "Server": "nginx",
    }))
    settings = edgecache.settings
    for n in range(1, PATHS + 1):
        key = build_key(f"/product-{n}/p", None, {}, settings=settings.key, default_site=settings.site_host,
                        allowed_hosts=())
        edgecache.store.put(Entry(key=key, variant="", vary=(), status=200, headers=headers, body=body,
                                  request_time=now, response_time=now, initial_age=0.0, lifetime=300.0,
                                  fresh_until=now + 300, stale_while_revalidate_until=now + 300,
                                  stale_if_error_until=now + 600, rule="product"))


async def main(body_bytes: int, count: int) -> None:
    settings = build_settings({"rules": [{"name": "product", "match": "/*/p", "ttl": 30}]}, environ={})
    edgecache = Edgecache(settings)
    store_pages(edgecache, b"x" * body_bytes, time.time())
    requests = [make_mocked_request("GET", f"/product-{n}/p", headers={"Host": "127.0.0.1:18090"})
                for n in range(1, PATHS + 1)]
    started = time.perf_counter()
    for i in range(count):
        response = await edgecache.proxy.handle(requests[i % PATHS])
        assert response.status == 200
    elapsed = time.perf_counter() - started
    print(f"{elapsed / count * 1e6:.1f} us per hit in Proxy.handle ({count} hits, {body_bytes} B bodies)")


if __name__ == "__main__":
    handler = PeriodicFlushHandler(io.StringIO())
    handler.setFormatter(CachedTimeFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level="INFO", handlers=[handler])
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2048, int(sys.argv[2]) if len(sys.argv) > 2 else 50_000))

"""The first request misses and is stored; the second is a hit."""

import aiohttp

from conftest import proxy_url


async def test_miss_then_hit(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60"}, body=b"shoe page")
    async with client.get(proxy_url(edgecache, "/shoe/p")) as first:
        assert first.status == 200
        assert await first.read() == b"shoe page"
        assert first.headers["X-Cache"] == "MISS"
        assert first.headers["Cache-Status"] == "edgecache; fwd=uri-miss; stored"
    async with client.get(proxy_url(edgecache, "//shoe/p")) as second:
        assert await second.read() == b"shoe page"
        assert second.headers["X-Cache"] == "HIT"
        assert second.headers["Age"] == "0"
    assert origin.count("/shoe/p") == 1

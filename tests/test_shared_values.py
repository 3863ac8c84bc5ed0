"""Entries in Redis: the binary format, and corrupted or oversized values read as misses."""

from __future__ import annotations

import struct

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from edgecache.entry import Entry
from edgecache.errors import CorruptEntryError
from edgecache.key import CacheKey
from edgecache.shared.codec import decode_entry, encode_entry

from conftest import proxy_url
from redis_process import redis_server, shared_settings, two_nodes  # noqa: F401

LIMIT = 1 << 20


def sample_entry(body: bytes = b"<html>shoe</html>") -> Entry:
    headers = CIMultiDict([("Content-Type", "text/html"), ("Set-Thing", "a"), ("Set-Thing", "b")])
    return Entry(
        key=CacheKey("shop.example", "/shoe/p", "channel=b2b"), variant="accept-language=de", vary=("accept-language",),
        status=200, headers=CIMultiDictProxy(headers), body=body, request_time=100.0, response_time=100.5,
        initial_age=0.5, lifetime=30.0, fresh_until=130.5, stale_while_revalidate_until=140.5,
        stale_if_error_until=430.5, must_revalidate=True, rule="product", tags=frozenset({"sku:1", "sku:2"}),
        claims=(("SKU-1", "in_stock"),), forbid_stale=True,
    )


def test_codec_round_trip() -> None:
    entry = sample_entry()
    assert decode_entry(encode_entry(entry), max_bytes=LIMIT) == entry


def test_codec_keeps_repeated_headers() -> None:
    decoded = decode_entry(encode_entry(sample_entry()), max_bytes=LIMIT)
    assert decoded.headers.getall("set-thing") == ["a", "b"]


def test_codec_rejects_pickle() -> None:
    with pytest.raises(CorruptEntryError, match="starts with"):
        decode_entry(b"\x80\x04\x95" + b"\x00" * 20, max_bytes=LIMIT)


def test_codec_rejects_other_version() -> None:
    data = bytearray(encode_entry(sample_entry()))
    data[3] = 2
    with pytest.raises(CorruptEntryError, match="version 2"):
        decode_entry(bytes(data), max_bytes=LIMIT)


def test_codec_rejects_truncated_value() -> None:
    with pytest.raises(CorruptEntryError, match="do not match"):
        decode_entry(encode_entry(sample_entry())[:-1], max_bytes=LIMIT)


def test_codec_rejects_oversized_value() -> None:
    with pytest.raises(CorruptEntryError, match="over the limit of 100 bytes"):
        decode_entry(encode_entry(sample_entry()), max_bytes=100)


@pytest.mark.parametrize("metadata", [
    b"[]", b"{}", b'{"key": 1}', b"not json",
])
def test_codec_rejects_bad_metadata(metadata: bytes) -> None:
    data = struct.pack(">3sBII", b"ECE", 1, len(metadata), 0) + metadata
    with pytest.raises(CorruptEntryError):
        decode_entry(data, max_bytes=LIMIT)


async def test_corrupted_value_is_a_miss(origin, two_nodes, client) -> None:
    node_a, node_b = two_nodes
    async with client.get(proxy_url(node_a, "/shoe/p")) as response:
        await response.read()
    redis = node_b.shared.tier.client
    [entry_key] = [key async for key in redis.scan_iter(match="edgecache:e:*")]
    await redis.set(entry_key, b"ECE\x01garbage", keepttl=True)

    async with client.get(proxy_url(node_b, "/shoe/p")) as response:
        assert response.status == 200
        assert response.headers["X-Cache"] == "MISS"
    assert node_b.shared.tier.figures["corrupt"] == 1
    assert origin.count("/shoe/p") == 2


async def test_oversized_value_is_a_miss(origin, two_nodes, client) -> None:
    node_a, node_b = two_nodes
    async with client.get(proxy_url(node_a, "/shoe/p")) as response:
        await response.read()
    node_b.shared.tier.max_entry_bytes = 64

    async with client.get(proxy_url(node_b, "/shoe/p")) as response:
        assert response.headers["X-Cache"] == "MISS"
    assert node_b.shared.tier.figures["corrupt"] == 1
    assert origin.count("/shoe/p") == 2


async def test_large_entry_not_written(origin, redis_server, make_edgecache, client) -> None:
    node = await make_edgecache(origin.url, shared_settings(redis_server.url, shared_max_entry_bytes=256))
    origin.script("/big/p", headers={"Cache-Control": "max-age=60"}, body=b"x" * 1000)

    async with client.get(proxy_url(node, "/big/p")) as response:
        assert len(await response.read()) == 1000
    assert node.shared.tier.figures["too_large"] == 1
    assert [key async for key in node.shared.tier.client.scan_iter(match="edgecache:e:*")] == []


async def test_redis_key_expires_with_entry(origin, redis_server, make_edgecache, client) -> None:
    node = await make_edgecache(origin.url, shared_settings(redis_server.url, stale_if_error=0))
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60, stale-while-revalidate=30"})

    async with client.get(proxy_url(node, "/shoe/p")) as response:
        await response.read()

    [entry_key] = [key async for key in node.shared.tier.client.scan_iter(match="edgecache:e:*")]
    ttl_ms = await node.shared.tier.client.pttl(entry_key)
    # The lower bound leaves a few seconds for a slow machine between storing and asking.
    assert 85_000 < ttl_ms <= 90_000

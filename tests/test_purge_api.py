"""POST /purge through the real proxy: each selector, hard and soft, and the admin token."""

from __future__ import annotations

import aiohttp
import pytest

from conftest import admin_url, proxy_url
from edgecache.config import build_settings
from edgecache.errors import ConfigError
from inventory_pages import TOKEN, Clock, bearer

SWR = "max-age=60, stale-while-revalidate=30"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def cache(origin, make_edgecache, clock):
    for path in ("/shoes/a", "/shoes/b", "/shoes-sale/c", "/bags/d"):
        origin.script(path, headers={"Cache-Control": SWR, "Surrogate-Key": f"all {path.split('/')[1]}"},
                      body=path.encode())
    return await make_edgecache(origin.url, {"admin": {"token": TOKEN}}, clock=clock)


async def get(client, edgecache, path: str) -> tuple[int, str]:
    async with client.get(proxy_url(edgecache, path)) as response:
        await response.read()
        return response.status, response.headers["X-Cache"]


async def purge(client, edgecache, body, headers=None) -> tuple[int, dict]:
    async with client.post(admin_url(edgecache, "/purge"), json=body,
                           headers=bearer() if headers is None else headers) as response:
        return response.status, await response.json()


async def fill(client, edgecache) -> None:
    for path in ("/shoes/a", "/shoes/b", "/shoes-sale/c", "/bags/d"):
        assert await get(client, edgecache, path) == (200, "MISS")


async def cached(client, edgecache) -> dict[str, str]:
    return {path: (await get(client, edgecache, path))[1] for path in ("/shoes/a", "/shoes/b", "/shoes-sale/c", "/bags/d")}


async def test_purge_path_hard(origin, cache, client) -> None:
    await fill(client, cache)
    status, answer = await purge(client, cache, {"paths": ["//shoes/./a"]})
    assert status == 200
    assert answer == {"purged": 1, "soft": False}
    assert await cached(client, cache) == {"/shoes/a": "MISS", "/shoes/b": "HIT", "/shoes-sale/c": "HIT",
                                           "/bags/d": "HIT"}
    assert origin.count("/shoes/a") == 2


async def test_purge_prefix_keeps_sibling(origin, cache, client) -> None:
    await fill(client, cache)
    status, answer = await purge(client, cache, {"prefixes": ["/shoes/"]})
    assert (status, answer) == (200, {"purged": 2, "soft": False})
    assert await cached(client, cache) == {"/shoes/a": "MISS", "/shoes/b": "MISS", "/shoes-sale/c": "HIT",
                                           "/bags/d": "HIT"}


async def test_purge_tag_hard(origin, cache, client) -> None:
    await fill(client, cache)
    status, answer = await purge(client, cache, {"tags": ["bags"]})
    assert (status, answer) == (200, {"purged": 1, "soft": False})
    assert await cached(client, cache) == {"/shoes/a": "HIT", "/shoes/b": "HIT", "/shoes-sale/c": "HIT",
                                           "/bags/d": "MISS"}


async def test_purge_all_hard(origin, cache, client) -> None:
    await fill(client, cache)
    status, answer = await purge(client, cache, {"all": True})
    assert (status, answer) == (200, {"purged": 4, "soft": False})
    assert len(cache.store) == 0
    assert origin.count() == 4


async def test_purge_tag_soft_serves_stale(origin, cache, client) -> None:
    await fill(client, cache)
    status, answer = await purge(client, cache, {"tags": ["shoes"], "soft": True})
    assert (status, answer) == (200, {"purged": 2, "soft": True})
    async with client.get(proxy_url(cache, "/shoes/a")) as response:
        assert await response.read() == b"/shoes/a"
        assert response.headers["X-Cache"] == "STALE"
    await cache.proxy.close()
    assert origin.count("/shoes/a") == 2
    assert await get(client, cache, "/shoes/a") == (200, "HIT")


async def test_purge_prefix_soft(origin, cache, client) -> None:
    await fill(client, cache)
    status, answer = await purge(client, cache, {"prefixes": ["/shoes"], "soft": True})
    assert (status, answer) == (200, {"purged": 3, "soft": True})
    assert await get(client, cache, "/shoes-sale/c") == (200, "STALE")
    assert await get(client, cache, "/bags/d") == (200, "HIT")


async def test_purge_path_soft(origin, cache, client) -> None:
    await fill(client, cache)
    await purge(client, cache, {"paths": ["/bags/d"], "soft": True})
    assert await get(client, cache, "/bags/d") == (200, "STALE")


async def test_purge_all_soft(origin, cache, client) -> None:
    await fill(client, cache)
    status, answer = await purge(client, cache, {"all": True, "soft": True})
    assert (status, answer) == (200, {"purged": 4, "soft": True})
    assert len(cache.store) == 4


async def test_soft_purge_keeps_expiry(origin, cache, client, clock) -> None:
    await fill(client, cache)
    await purge(client, cache, {"paths": ["/bags/d"], "soft": True})
    clock.advance(90)  # Past max-age 60 plus stale-while-revalidate 30: the soft purge gave no extra life.
    assert await get(client, cache, "/bags/d") == (200, "MISS")


async def test_soft_purge_twice_same_expiry(origin, cache, client, clock) -> None:
    await fill(client, cache)
    await purge(client, cache, {"paths": ["/bags/d"], "soft": True})
    entry = cache.store.most_recent(1)[0]
    await purge(client, cache, {"paths": ["/bags/d"], "soft": True})
    again = cache.store.most_recent(1)[0]
    assert again.fresh_until == entry.fresh_until == clock.now
    assert again.stale_while_revalidate_until == entry.stale_while_revalidate_until == clock.now + 90


async def test_wrong_token_401(cache, client) -> None:
    status, answer = await purge(client, cache, {"all": True}, headers=bearer("nope"))
    assert status == 401
    assert answer == {"error": "missing or wrong bearer token"}


async def test_missing_token_401(cache, client) -> None:
    status, _ = await purge(client, cache, {"all": True}, headers={})
    assert status == 401


async def test_no_token_configured_403(origin, make_edgecache, client) -> None:
    edgecache = await make_edgecache(origin.url)
    status, answer = await purge(client, edgecache, {"all": True})
    assert status == 403
    assert "admin.token_file" in answer["error"]
    assert "EDGECACHE_ADMIN_TOKEN" in answer["error"]


async def test_token_from_file(origin, make_edgecache, client, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    edgecache = await make_edgecache(origin.url, {"admin": {"token_file": str(token_file)}})
    assert (await purge(client, edgecache, {"all": True}, headers=bearer("from-file")))[0] == 200
    assert (await purge(client, edgecache, {"all": True}))[0] == 401


def test_token_from_env() -> None:
    settings = build_settings({}, environ={"EDGECACHE_ADMIN_TOKEN": "from-env"})
    assert settings.admin_token() == "from-env"


def test_token_file_missing(tmp_path) -> None:
    settings = build_settings({"admin": {"token_file": str(tmp_path / "absent")}}, environ={})
    with pytest.raises(ConfigError, match="admin.token_file: cannot read"):
        settings.admin_token()


async def test_token_never_logged(origin, cache, client, caplog) -> None:
    caplog.set_level("DEBUG")
    await purge(client, cache, {"all": True})
    await purge(client, cache, {"all": True}, headers=bearer("wrong-guess"))
    async with client.get(admin_url(cache, "/stats")) as response:
        stats_text = await response.text()
    assert TOKEN not in caplog.text
    assert "wrong-guess" not in caplog.text
    assert TOKEN not in stats_text


@pytest.mark.parametrize(("body", "message"), [
    ({"paths": "/a"}, 'paths: invalid value "/a"; expected a list of non-empty strings'),
    ({"paths": ["/a"], "hard": True}, "hard: unknown field; expected one of all, paths, prefixes, soft, tags"),
    ({"all": "yes"}, 'all: invalid value "yes"; expected true or false'),
    ({}, 'body: nothing to purge; expected at least one of paths, prefixes, tags or "all": true'),
    ([1], "body: invalid value [1]; expected a JSON object"),
    ({"paths": ["x"]}, 'paths[0]: invalid value "x"; expected a path that starts with "/", such as "/x"'),
    ({"paths": ["/a", "trail-boot-5/p"]},
     'paths[1]: invalid value "trail-boot-5/p"; expected a path that starts with "/", such as "/trail-boot-5/p"'),
    ({"paths": ["http://host/p"]},
     'paths[0]: invalid value "http://host/p"; expected a path that starts with "/", such as "/p"'),
    ({"prefixes": ["shoes/"]},
     'prefixes[0]: invalid value "shoes/"; expected a path that starts with "/", such as "/shoes/"'),
    ({"all": True, "paths": ["/a"]},
     'all: ambiguous together with paths; expected either "all": true alone or paths, prefixes and tags '
     "without it"),
    ({"all": True, "prefixes": ["/a/"], "tags": ["t"]},
     'all: ambiguous together with prefixes, tags; expected either "all": true alone or paths, prefixes and '
     "tags without it"),
])
async def test_purge_invalid_body(cache, client, body, message) -> None:
    status, answer = await purge(client, cache, body)
    assert status == 400
    assert answer == {"error": message}


async def test_purge_broken_json(cache, client) -> None:
    async with client.post(admin_url(cache, "/purge"), data=b"{not json", headers=bearer()) as response:
        assert response.status == 400
        assert await response.json() == {"error": "body is not valid JSON"}


async def test_rejected_tokens_logged_once(cache, client, caplog) -> None:
    caplog.set_level("WARNING", logger="edgecache.admin")
    for guess in ("guess-1", "guess-2", "guess-3"):
        status, _ = await purge(client, cache, {"all": True}, headers=bearer(guess))
        assert status == 401
    warnings = [record.getMessage() for record in caplog.records if record.name == "edgecache.admin"]
    assert warnings == ["rejected POST /purge from 127.0.0.1: missing or wrong token"]


@pytest.mark.parametrize("path", ["/%73hoes/a", "/shoes//a", "/x/../shoes/a", "/shoes/./a"])
async def test_purge_path_canonical_forms(origin, cache, client, path) -> None:
    await fill(client, cache)
    status, answer = await purge(client, cache, {"paths": [path]})
    assert (status, answer) == (200, {"purged": 1, "soft": False})
    assert await get(client, cache, "/shoes/a") == (200, "MISS")
    assert await get(client, cache, "/shoes/b") == (200, "HIT")


async def test_rejected_purge_changes_nothing(origin, cache, client) -> None:
    await fill(client, cache)
    status, _ = await purge(client, cache, {"all": True, "paths": ["/shoes/a"]})
    assert status == 400
    assert await cached(client, cache) == {"/shoes/a": "HIT", "/shoes/b": "HIT", "/shoes-sale/c": "HIT",
                                           "/bags/d": "HIT"}


async def test_purge_logged_with_selectors(origin, cache, client, caplog) -> None:
    caplog.set_level("INFO", logger="edgecache.admin")
    await fill(client, cache)
    await purge(client, cache, {"paths": ["/shoes/a", "/shoes/b", "/bags/d", "/none/1", "/none/2"],
                                "tags": ["shoes"], "soft": True})
    await purge(client, cache, {"all": True})
    lines = [record.getMessage() for record in caplog.records if record.name == "edgecache.admin"]
    assert lines == [
        'purge from 127.0.0.1 of 5 paths ["/shoes/a", "/shoes/b", "/bags/d"] and 2 more, 1 tag ["shoes"] (soft): '
        '{"purged": 5, "soft": true}',
        'purge from 127.0.0.1 of everything (hard): {"purged": 4, "soft": false}',
    ]

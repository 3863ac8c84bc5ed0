"""`edgecache purge` as a subprocess against a running admin listener."""

from __future__ import annotations

import asyncio
import os
import sys

from conftest import proxy_url
from inventory_pages import TOKEN


async def run_cli(*args: str, env_token: str | None = None) -> tuple[int, str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("EDGECACHE_")}
    if env_token is not None:
        env["EDGECACHE_ADMIN_TOKEN"] = env_token
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgecache", "purge", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_cli_purge_path(origin, make_edgecache, client) -> None:
    edgecache = await make_edgecache(origin.url, {"admin": {"token": TOKEN}})
    async with client.get(proxy_url(edgecache, "/shoe/p")) as response:
        await response.read()
    admin = f"http://127.0.0.1:{edgecache.admin_port}"
    code, stdout, _ = await run_cli("--admin", admin, "--token", TOKEN, "--path", "/shoe/p")
    assert code == 0
    assert stdout == '{"purged": 1, "soft": false}\n'
    assert len(edgecache.store) == 0


async def test_cli_token_from_env(origin, make_edgecache) -> None:
    edgecache = await make_edgecache(origin.url, {"admin": {"token": TOKEN}})
    admin = f"http://127.0.0.1:{edgecache.admin_port}"
    code, stdout, _ = await run_cli("--admin", admin, "--tag", "sku:A", "--soft", env_token=TOKEN)
    assert code == 0
    assert stdout == '{"purged": 0, "soft": true}\n'


async def test_cli_wrong_token_fails(origin, make_edgecache) -> None:
    edgecache = await make_edgecache(origin.url, {"admin": {"token": TOKEN}})
    admin = f"http://127.0.0.1:{edgecache.admin_port}"
    code, stdout, _ = await run_cli("--admin", admin, "--token", "wrong", "--all")
    assert code == 1
    assert stdout == '{"error": "missing or wrong bearer token"}\n'


async def test_cli_purge_proxy_url(origin, make_edgecache, client) -> None:
    edgecache = await make_edgecache(origin.url, {"admin": {"token": TOKEN}})
    for path in ("/shoe/p", "/c/shoes/1"):
        async with client.get(proxy_url(edgecache, path)) as response:
            await response.read()
    admin = f"http://127.0.0.1:{edgecache.admin_port}"
    code, stdout, _ = await run_cli("--admin", admin, "--token", TOKEN, "--path", proxy_url(edgecache, "/shoe/p?x=1"))
    assert code == 0
    assert stdout == '{"purged": 1, "soft": false}\n'
    code, stdout, _ = await run_cli("--admin", admin, "--token", TOKEN, "--prefix", proxy_url(edgecache, "/c/"))
    assert code == 0
    assert stdout == '{"purged": 1, "soft": false}\n'
    assert len(edgecache.store) == 0


async def test_cli_purge_relative_path_rejected(origin, make_edgecache) -> None:
    edgecache = await make_edgecache(origin.url, {"admin": {"token": TOKEN}})
    admin = f"http://127.0.0.1:{edgecache.admin_port}"
    code, stdout, _ = await run_cli("--admin", admin, "--token", TOKEN, "--path", "shoe/p")
    assert code == 1
    assert stdout == ('{"error": "paths[0]: invalid value \\"shoe/p\\"; expected a path that starts with \\"/\\", '
                      'such as \\"/shoe/p\\""}\n')

"""The dashboard's files on the admin listener."""

import aiohttp

from conftest import admin_url


async def test_dashboard_page(edgecache, client: aiohttp.ClientSession) -> None:
    async with client.get(admin_url(edgecache, "/")) as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
    assert '<script src="/static/dashboard.js"></script>' in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page


async def test_dashboard_script(edgecache, client: aiohttp.ClientSession) -> None:
    async with client.get(admin_url(edgecache, "/static/dashboard.js")) as response:
        assert response.status == 200
        script = await response.text()
    assert 'fetch("/stats"' in script
    assert "innerHTML" not in script


async def test_dashboard_style(edgecache, client: aiohttp.ClientSession) -> None:
    async with client.get(admin_url(edgecache, "/static/dashboard.css")) as response:
        assert response.status == 200
        assert response.content_type == "text/css"

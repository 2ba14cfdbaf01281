"""The dashboard: plain static files in `static/` beside this module (HTML, CSS, JavaScript
and the vendored uPlot chart library), served by the report service at `/` and
`/dashboard/{name}`. The page calls the report API from the browser; nothing here reads data.

The page is revalidated on every load (`no-cache`, a 304 while unchanged); the files it names
are addressed with a digest of their content (`/dashboard/app.js?v=…`), so browsers keep them
for a year and fetch them again exactly when they change.
"""

from __future__ import annotations

import re
from importlib import resources

from core.errors import NotFound
from transports.http_app import Reply, Request, Routes
from transports.http_static import StaticFile

PAGE = "index.html"
PAGE_CACHE = b"no-cache"
ASSET_CACHE = b"public, max-age=31536000, immutable"
# The page's references to its files, which get their version appended.
_ASSET_REFERENCE = re.compile(rb'(src|href)="/dashboard/([A-Za-z0-9._-]+)"')


class Dashboard:
    def __init__(self) -> None:
        folder = resources.files("report_server") / "static"
        self._assets = {
            item.name: StaticFile.of(item.name, item.read_bytes(), ASSET_CACHE)
            for item in folder.iterdir()
            if item.is_file() and item.name != PAGE
        }
        page = (folder / PAGE).read_bytes()
        self._page = StaticFile.of(PAGE, _ASSET_REFERENCE.sub(self._versioned, page), PAGE_CACHE)

    def _versioned(self, reference: re.Match[bytes]) -> bytes:
        attribute, name = reference.group(1), reference.group(2).decode()
        version = self._assets[name].version  # a KeyError here: the page names a missing file
        return b'%s="/dashboard/%s?v=%s"' % (attribute, name.encode(), version.encode())

    async def page(self, request: Request) -> Reply:
        return self._page.reply(request)

    async def asset(self, request: Request) -> Reply:
        asset = self._assets.get(request.path_params["name"])
        if asset is None:
            raise NotFound(f"no dashboard file {request.path_params['name'][:64]!r}")
        return asset.reply(request)


def routes() -> Routes:
    dashboard = Dashboard()
    return {"/": {"GET": dashboard.page}, "/dashboard/{name}": {"GET": dashboard.asset}}

"""Server-rendered pages (aiohttp-jinja2 templates; autoescaped, no inline scripts)."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from fiv_console import __version__


@aiohttp_jinja2.template("index.html")
async def index(request: web.Request) -> dict[str, Any]:
    return {"version": __version__}

"""The conversations resource of the REST API (operations being added by the accounts issue)."""

from __future__ import annotations

from fiv_console.web.api.routing import RouteTable

routes = RouteTable()

"""The administration pages: one address per section (`/admin/users`, `/admin/settings`, …) so each can be
bookmarked, each open to the roles the API lets use what it shows; `/admin` opens the first the role has.

They share one template (`admin.html`, its side navigation drawn from `ADMIN_SECTIONS` for the person's
role) and one module (`static/admin.js`), which draws the section named by the address.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp_jinja2
from aiohttp import web

from fiv_console.access import STAFF_ROLES
from fiv_console.accounts.users import Role
from fiv_console.web import pages

ADMINS: frozenset[Role] = frozenset({"admin"})


@dataclass(frozen=True, slots=True)
class AdminSection:
    key: str
    # Shown until the page's script puts the person's language in.
    label: str
    roles: frozenset[Role]

    @property
    def path(self) -> str:
        return f"/admin/{self.key}"

    @property
    def label_key(self) -> str:
        return f"admin.nav.{self.key}"


# Supervisors run the queues, their members and what agents use (canned responses, labels), as the API
# allows them; people, numbers, tokens, the audit log and the tenant's settings are for admins.
ADMIN_SECTIONS: tuple[AdminSection, ...] = (
    AdminSection("users", "Users", ADMINS),
    AdminSection("queues", "Queues", STAFF_ROLES),
    AdminSection("channels", "WhatsApp numbers", ADMINS),
    AdminSection("canned", "Canned responses", STAFF_ROLES),
    AdminSection("labels", "Labels", STAFF_ROLES),
    AdminSection("tokens", "API tokens", ADMINS),
    AdminSection("audit", "Audit log", ADMINS),
    AdminSection("settings", "Settings", ADMINS),
)


def install(app: web.Application) -> None:
    """The pages' routes, and the sections for the template (after `aiohttp_jinja2.setup`)."""
    aiohttp_jinja2.get_env(app).globals["admin_sections"] = ADMIN_SECTIONS
    app.router.add_get("/admin", pages.page("admin.html", roles=STAFF_ROLES))
    for section in ADMIN_SECTIONS:
        app.router.add_get(section.path, pages.page("admin.html", roles=section.roles))

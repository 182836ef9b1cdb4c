"""The browser pages as HTTP sees them: `/` lets only a live session in, `/login` is the form, and no page or
script of ours carries inline code or writes markup from data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fiv_console.resources import STATIC_DIR, TEMPLATES_DIR
from tests.api import Api, Browsers, TenantPeople


async def _page(api: Api, path: str) -> tuple[int, str, str]:
    response = await api.client.get(path, allow_redirects=False)
    return response.status, response.headers.get("Location", ""), await response.text()


async def test_signed_out_the_console_sends_you_to_the_login_page(browsers: Browsers) -> None:
    status, location, _ = await _page(await browsers.new(), "/")
    assert (status, location) == (302, "/login")


async def test_the_login_page_is_a_form_for_login_js_under_the_policy(browsers: Browsers) -> None:
    api = await browsers.new()
    response = await api.client.get("/login")
    html = await response.text()
    assert response.status == 200
    assert '<script type="module" src="/static/login.js"></script>' in html
    assert 'id="login-email"' in html
    assert 'type="password"' in html
    assert 'aria-live="assertive"' in html
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    script = await api.client.get("/static/login.js")
    assert script.status == 200
    assert "/api/auth/login" in await script.text()


async def test_signed_in_the_console_shell_renders(browsers: Browsers, tenant: TenantPeople) -> None:
    agent = await browsers.signed_in(tenant.agent)
    status, _, html = await _page(agent, "/")
    assert status == 200
    assert '<script type="module" src="/static/console.js"></script>' in html
    assert 'id="sign-out"' in html


async def test_an_ended_session_no_longer_opens_the_console(browsers: Browsers, tenant: TenantPeople) -> None:
    agent = await browsers.signed_in(tenant.agent)
    assert (await agent.post("/api/auth/logout")).status == 200
    status, location, _ = await _page(agent, "/")
    assert (status, location) == (302, "/login")


async def test_a_disabled_user_is_sent_to_login_and_the_cookie_is_cleared(
    browsers: Browsers, tenant: TenantPeople
) -> None:
    agent = await browsers.signed_in(tenant.agent)
    admin = await browsers.signed_in(tenant.admin)
    assert (await agent.client.get("/", allow_redirects=False)).status == 200
    assert (await admin.patch(f"/api/users/{tenant.agent.id}", {"disabled": True})).status == 200
    response = await agent.client.get("/", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (302, "/login")
    assert "fiv_session=" in response.headers.get("Set-Cookie", ""), "the dead session's cookie is cleared"
    # Enabling the user again does not bring the old session back: they sign in anew.
    assert (await admin.patch(f"/api/users/{tenant.agent.id}", {"disabled": False})).status == 200
    status, location, _ = await _page(agent, "/")
    assert (status, location) == (302, "/login")


async def test_an_api_token_opens_no_console(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    secret = (await admin.post("/api/tokens", {"name": "pages", "role": "admin"})).data["secret"]
    headers = {"Authorization": f"Bearer {secret}"}
    response = await (await browsers.new()).client.get("/", headers=headers, allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (302, "/login")


async def test_an_unknown_address_is_the_consoles_own_page_with_a_way_back(
    browsers: Browsers, tenant: TenantPeople
) -> None:
    for api in (await browsers.new(), await browsers.signed_in(tenant.agent)):
        response = await api.client.get("/no/such/page", allow_redirects=False)
        html = await response.text()
        assert response.status == 404
        assert response.headers["Content-Type"].startswith("text/html")
        assert 'data-i18n="notFound.title"' in html
        assert '<a href="/" data-i18n="notice.back">' in html
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    # The API keeps its envelope, the static files their plain answer.
    anybody = await browsers.new()
    answer = await anybody.get("/api/no-such-resource")
    assert (answer.status, answer.body["success"], answer.body["error"]["code"]) == (404, False, "NOT_FOUND")
    missing = await anybody.client.get("/static/no-such-file.js")
    assert missing.status == 404
    assert "notFound" not in await missing.text()


async def test_the_sections_a_role_may_open_are_in_the_header(browsers: Browsers, tenant: TenantPeople) -> None:
    _, _, agents = await _page(await browsers.signed_in(tenant.agent), "/")
    # An agent has the console only: no navigation to show.
    assert 'aria-label="Sections"' not in agents
    _, _, supervisors = await _page(await browsers.signed_in(tenant.supervisor), "/")
    links = re.findall(r'<a href="([^"]+)" data-i18n="nav\.\w+"( aria-current="page")?>', supervisors)
    assert links == [("/", ' aria-current="page"'), ("/wallboard", ""), ("/reports", ""), ("/admin", "")]


async def test_the_administration_pages_follow_the_roles(browsers: Browsers, tenant: TenantPeople) -> None:
    status, location, _ = await _page(await browsers.new(), "/admin/settings")
    assert (status, location) == (302, "/login?next=/admin/settings")
    admin = await browsers.signed_in(tenant.admin)
    supervisor = await browsers.signed_in(tenant.supervisor)
    agent = await browsers.signed_in(tenant.agent)
    staff_sections = {"/admin", "/admin/queues", "/admin/canned", "/admin/labels"}
    admin_sections = {"/admin/users", "/admin/channels", "/admin/tokens", "/admin/audit", "/admin/settings"}
    for path in sorted(staff_sections | admin_sections):
        status, _, html = await _page(admin, path)
        assert status == 200, path
        assert '<script type="module" src="/static/admin.js"></script>' in html
        assert (await _page(supervisor, path))[0] == (200 if path in staff_sections else 403), path
        assert (await _page(agent, path))[0] == 403, path
    _, _, supervisors = await _page(supervisor, "/admin/queues")
    assert re.findall(r'data-section="(\w+)"', supervisors) == ["queues", "canned", "labels"]
    assert '<a href="/admin" data-i18n="nav.admin" aria-current="page">' in supervisors
    assert (await _page(admin, "/admin/nothing"))[0] == 404


TEMPLATES = sorted(TEMPLATES_DIR.glob("*.html"))
SCRIPTS = sorted(STATIC_DIR.rglob("*.js"))


@pytest.mark.parametrize("template", TEMPLATES, ids=[path.name for path in TEMPLATES])
def test_templates_have_no_inline_script_style_or_handler(template: Path) -> None:
    html = template.read_text()
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, "inline <script>"
    assert re.search(r"<style|\sstyle\s*=", html) is None, "inline style"
    assert re.search(r"\son[a-z]+\s*=", html) is None, "inline event handler"


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(path.relative_to(STATIC_DIR)) for path in SCRIPTS])
def test_scripts_never_write_markup(script: Path) -> None:
    source = script.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in source, f"{sink} in {script}"

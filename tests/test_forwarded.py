"""Behind a reverse proxy each client keeps its own address (issue #12, point 5).

Every production deployment sits behind a proxy that ends TLS, so every connection comes from the proxy. The
tests' client connects from 127.0.0.1, the trusted proxy (`TRUSTED_PROXIES=127.0.0.1`), and names the
client it stands for in `X-Forwarded-For` as a proxy would; peers elsewhere in 127.0.0.0/8 are not trusted.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator

import aiohttp
import pytest

from fiv_console.settings import ConfigError, Settings, load_settings
from fiv_console.web.forwarded import client_address, forwarded_scheme
from fiv_console.web.forwarded import is_trusted as forwarded_is_trusted
from tests.api import PASSWORD, Browsers, TenantPeople
from tests.conftest import TestDatabase, people_of, serving
from tests.sockets import open_console
from tests.test_login_throttle import ADDRESS_LIMIT, PAIR_LIMIT, new_address, throttle_settings

PROXY = "127.0.0.1"
NETWORKS = load_settings(trusted_proxies="127.0.0.1, 10.0.0.0/8, fd00::/8").trusted_proxies


def somebody() -> str:
    """A client address on the internet, one per simulated person."""
    return f"203.0.{random.randint(0, 255)}.{random.randint(1, 254)}"


def through_proxy(client: str, **more: str) -> dict[str, str]:
    return {"X-Forwarded-For": client, **more}


def proxied_settings(database: TestDatabase, trusted: str = PROXY) -> Settings:
    return throttle_settings(database, None, trusted_proxies=trusted)


@pytest.fixture
async def proxied(database: TestDatabase) -> AsyncIterator[Browsers]:
    async with serving(proxied_settings(database)) as server, people_of(server) as browsers:
        yield browsers


async def audited_addresses(browsers: Browsers, tenant: TenantPeople, action: str) -> list[str | None]:
    auditor = await browsers.new(headers=through_proxy(somebody()))
    assert (await auditor.login(tenant.admin)).status == 200
    entries = (await auditor.get(f"/api/audit-log?limit=100&action={action}")).data
    return [entry["client_address"] for entry in entries if entry["action"] == action]


async def test_an_attacker_behind_the_proxy_cannot_keep_the_owner_out(proxied: Browsers, tenant: TenantPeople) -> None:
    attacker = await proxied.new(headers=through_proxy(somebody()))
    statuses = [(await attacker.login(tenant.agent, f"guess {i}")).status for i in range(PAIR_LIMIT + 6)]
    assert statuses == [401] * PAIR_LIMIT + [429] * 6
    # The attacker's own address is refused for this account, even with the right password...
    assert (await attacker.login(tenant.agent)).status == 429
    # ...while the owner, through the same proxy from their own address, gets in.
    owner = await proxied.new(headers=through_proxy(somebody()))
    answer = await owner.login(tenant.agent)
    assert answer.status == 200, answer.body


async def test_guesses_over_many_accounts_behind_the_proxy_refuse_only_the_guesser(
    proxied: Browsers, tenant: TenantPeople
) -> None:
    stuffer = await proxied.new(headers=through_proxy(somebody()))
    for n in range(ADDRESS_LIMIT):
        answer = await stuffer.sign_in(f"victim-{n}@a.example", "Summer2024!", workspace=tenant.workspace)
        assert answer.status == 401
    assert (await stuffer.login(tenant.admin)).status == 429
    colleague = await proxied.new(headers=through_proxy(somebody()))
    assert (await colleague.login(tenant.admin)).status == 200


async def test_addresses_a_client_writes_itself_are_not_believed(proxied: Browsers, tenant: TenantPeople) -> None:
    # An untrusted peer naming a new address each time is still counted as itself...
    peer = new_address()
    for i in range(PAIR_LIMIT):
        spoofer = await proxied.new(address=peer, headers=through_proxy(somebody()))
        assert (await spoofer.login(tenant.agent, f"guess {i}")).status == 401
    refused = await proxied.new(address=peer, headers=through_proxy(somebody()))
    assert (await refused.login(tenant.agent)).status == 429

    # ...and through the proxy, what it wrote before the address the proxy appended proves nothing either.
    real = somebody()
    for i in range(PAIR_LIMIT):
        spoofer = await proxied.new(headers=through_proxy(f"{somebody()}, not an address, {real}"))
        assert (await spoofer.login(tenant.supervisor, f"guess {i}")).status == 401
    refused = await proxied.new(headers=through_proxy(f"{somebody()}, {real}"))
    assert (await refused.login(tenant.supervisor)).status == 429


async def test_the_audit_log_and_access_log_name_the_client_behind_the_proxy(
    proxied: Browsers, tenant: TenantPeople, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fiv_console.access")
    person = somebody()
    assert (await (await proxied.new(headers=through_proxy(person))).login(tenant.agent, "wrong")).status == 401
    assert person in await audited_addresses(proxied, tenant, "login.failed")
    assert person in [getattr(record, "client", None) for record in caplog.records]


@pytest.mark.parametrize("header", ["not an address", "203.0.113.7:4711", "", " , "])
async def test_a_malformed_forwarded_for_keeps_the_peer_address(
    proxied: Browsers, tenant: TenantPeople, header: str
) -> None:
    client = await proxied.new(headers=through_proxy(header, **{"X-Forwarded-Proto": "gopher"}))
    assert (await client.login(tenant.agent, "wrong")).status == 401
    assert set(await audited_addresses(proxied, tenant, "login.failed")) == {PROXY}


async def test_the_socket_takes_the_scheme_from_a_trusted_proxy_without_public_url(
    database: TestDatabase, tenant: TenantPeople
) -> None:
    async with serving(database.settings(trusted_proxies=PROXY)) as server, people_of(server) as browsers:
        https_origin = f"https://{server.host}:{server.port}"
        behind = await browsers.new(headers=through_proxy(somebody(), **{"X-Forwarded-Proto": "https"}))
        assert (await behind.login(tenant.agent)).status == 200
        console = await open_console(behind, origin=https_origin)
        assert console.hello["type"] == "hello"
        await console.close()

        # A peer that is not the proxy cannot claim https: its Origin must match what it really speaks.
        direct = await browsers.new(address=new_address(), headers={"X-Forwarded-Proto": "https"})
        assert (await direct.login(tenant.agent)).status == 200
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await open_console(direct, origin=https_origin)
        assert refused.value.status == 403


def _credentials(tenant: TenantPeople) -> dict[str, str]:
    return {"email": tenant.agent.email, "password": PASSWORD, "workspace": tenant.agent.workspace}


async def test_the_session_cookie_is_secure_when_a_trusted_proxy_says_https(
    proxied: Browsers, tenant: TenantPeople
) -> None:
    def session_cookie(response: aiohttp.ClientResponse) -> str:
        (cookie,) = [value for value in response.headers.getall("Set-Cookie") if value.startswith("fiv_session=")]
        return cookie.lower()

    behind = await proxied.new(headers=through_proxy(somebody(), **{"X-Forwarded-Proto": "https"}))
    answer = await behind.client.post("/api/auth/login", json=_credentials(tenant))
    assert answer.status == 200
    assert "; secure" in session_cookie(answer)
    # Over plain HTTP (the proxy says so), or claimed by a peer that is not the proxy: not marked.
    plain = await proxied.new(headers=through_proxy(somebody(), **{"X-Forwarded-Proto": "http"}))
    assert "; secure" not in session_cookie(await plain.client.post("/api/auth/login", json=_credentials(tenant)))
    claimed = await proxied.new(address=new_address(), headers={"X-Forwarded-Proto": "https"})
    assert "; secure" not in session_cookie(await claimed.client.post("/api/auth/login", json=_credentials(tenant)))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (["203.0.113.7"], "203.0.113.7"),
        (["203.0.113.7, 10.1.2.3"], "203.0.113.7"),  # through two of our proxies
        (["198.51.100.1, 203.0.113.7", "10.1.2.3"], "203.0.113.7"),  # two headers are one list, in order
        (["garbage, 203.0.113.7"], "203.0.113.7"),  # the client's own entries are never looked at
        (["10.9.9.9, 10.1.2.3"], "10.9.9.9"),  # every hop ours: the first one
        (["2001:db8::7"], "2001:db8::7"),
        (["::ffff:203.0.113.7"], "203.0.113.7"),
        ([], PROXY),
        (["203.0.113.7, bad"], PROXY),
        (["[2001:db8::7]"], PROXY),
    ],
)
def test_the_client_is_the_right_most_address_that_is_not_our_proxy(header: list[str], expected: str) -> None:
    assert client_address(PROXY, header, NETWORKS) == expected


def test_only_peers_in_trusted_proxies_are_believed() -> None:
    assert forwarded_is_trusted("127.0.0.1", NETWORKS)
    assert forwarded_is_trusted("::ffff:10.0.0.1", NETWORKS)
    assert forwarded_is_trusted("fd12::1", NETWORKS)
    assert not forwarded_is_trusted("127.0.0.2", NETWORKS)
    assert not forwarded_is_trusted(None, NETWORKS)
    assert not forwarded_is_trusted("127.0.0.1", ())


@pytest.mark.parametrize(
    ("header", "expected"),
    [(["https"], "https"), (["http, HTTPS"], "https"), (["https", "http"], "http"), (["ftp"], None), ([], None)],
)
def test_the_scheme_is_the_last_forwarded_proto(header: list[str], expected: str | None) -> None:
    assert forwarded_scheme(header) == expected


def test_trusted_proxies_are_addresses_or_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().trusted_proxies == ()
    monkeypatch.setenv("TRUSTED_PROXIES", " 127.0.0.1 , 10.0.0.0/8,::1, 2001:db8::/32")
    assert [str(network) for network in load_settings().trusted_proxies] == [
        "127.0.0.1/32",
        "10.0.0.0/8",
        "::1/128",
        "2001:db8::/32",
    ]
    for wrong, entry in [("10.0.0.1/8", 1), ("127.0.0.1, proxy.internal", 2), ("10.0.0.0/33", 1)]:
        monkeypatch.setenv("TRUSTED_PROXIES", wrong)
        with pytest.raises(ConfigError) as refused:
            load_settings()
        assert str(refused.value).startswith(f"TRUSTED_PROXIES: entry {entry} is not an IP address or a network")
        assert "proxy.internal" not in str(refused.value)

"""The client's address and scheme behind a reverse proxy: `X-Forwarded-For` and `X-Forwarded-Proto`, believed
only from the peers in `TRUSTED_PROXIES`.

Behind a proxy every connection comes from the proxy. Without this, all clients would share its address: ten
wrong passwords from anyone would lock an account for everyone, the per-address sign-in limit and the
anonymous-body budget's share would be one for the whole world, and the audit log would name the proxy. A
proxy appends the address it received the request from to `X-Forwarded-For`, so the client is the right-most
entry that is not one of our proxies; entries further left were written by the client and prove nothing.
Anyone can send these headers, so they count only when the direct peer is a trusted proxy, and an entry
that is not an address leaves the peer's address in place rather than guessing.

The request is cloned with the client's address and scheme before anything reads them, so every later
`request.remote`, `request.scheme` and `request.secure` (throttling, budgets, sessions, the audit log, the
console socket's `Origin` check) sees them. `X-Forwarded-Host` is not believed: proxies pass `Host` on, and
where one does not, `PUBLIC_URL` names the origin, so there is nothing a forged host could be needed for.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

FORWARDED_FOR = "X-Forwarded-For"
FORWARDED_PROTO = "X-Forwarded-Proto"
_SCHEMES = ("http", "https")

Networks = Sequence[IPv4Network | IPv6Network]


def _address(text: str) -> IPv4Address | IPv6Address | None:
    try:
        address = ip_address(text.strip())
    except ValueError:
        return None
    # A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; they are the IPv4 address for trust and limits.
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(remote: str | None, proxies: Networks) -> bool:
    address = _address(remote) if remote else None
    return address is not None and any(address in network for network in proxies)


def client_address(peer: str, forwarded_for: Sequence[str], proxies: Networks) -> str:
    """The client behind the trusted proxy `peer`: walking `X-Forwarded-For` (every header, in order) from the
    right past our own proxies, the first address that is not one; the left-most when all are. The peer
    itself when there is no entry or an entry walked over is not an IP address."""
    entries = [entry for value in forwarded_for for entry in value.split(",")]
    client = peer
    for entry in reversed(entries):
        address = _address(entry)
        if address is None:
            return peer
        client = str(address)
        if not any(address in network for network in proxies):
            break
    return client


def forwarded_scheme(forwarded_proto: Sequence[str]) -> str | None:
    """The scheme the last proxy was reached over: the last `X-Forwarded-Proto` value, if http or https."""
    if not forwarded_proto:
        return None
    scheme = forwarded_proto[-1].split(",")[-1].strip().lower()
    return scheme if scheme in _SCHEMES else None


def middleware(proxies: Networks) -> Middleware:
    """Placed before everything that reads the client's address or the scheme."""

    @web.middleware
    async def from_trusted_proxies(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not proxies:  # no proxy trusted: nothing to read, and no address to parse per request
            return await handler(request)
        peer = request.remote
        if peer is None or not is_trusted(peer, proxies):
            return await handler(request)
        remote = client_address(peer, request.headers.getall(FORWARDED_FOR, []), proxies)
        scheme = forwarded_scheme(request.headers.getall(FORWARDED_PROTO, [])) or request.scheme
        return await handler(request.clone(remote=remote, scheme=scheme))

    return from_trusted_proxies

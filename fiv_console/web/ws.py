"""`GET /ws`: the console's WebSocket, one per browser tab.

Before the upgrade: the `Origin` must be this server's own (a page elsewhere cannot borrow the cookie:
cross-site WebSocket hijacking), the session cookie must stand for a live user, and the user may hold only
so many sockets here. After it: `hello`, then one reader loop that validates every frame and authorizes
every action again. Frames are small, so the size limit is low; binary or non-JSON frames close with
1003, unknown types and floods with 1008, oversized frames with 1009; the process lives on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from socket import SO_SNDBUF, SOL_SOCKET
from urllib.parse import urlsplit
from uuid import UUID

import orjson
from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import ValidationError

from fiv_console import events
from fiv_console.access import Viewer
from fiv_console.accounts import users
from fiv_console.accounts.users import AgentStatus
from fiv_console.assignment import presence
from fiv_console.conversations import reading
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.errors import DomainError, Forbidden, Unavailable
from fiv_console.keys import database_key, hub_key, instance_id_key, settings_key, upkeep_key
from fiv_console.observability.context import tenant_id_var, user_id_var
from fiv_console.realtime import wire
from fiv_console.realtime.hub import Hub
from fiv_console.realtime.protocol import (
    CLIENT_FRAME,
    CLIENT_FRAME_TYPES,
    MAX_CLIENT_FRAME,
    PONG,
    PresenceChange,
    Resume,
    TypingNotice,
    WatchWallboard,
    error_frame,
    hello_frame,
)
from fiv_console.realtime.socket import AgentSocket
from fiv_console.routing import queues
from fiv_console.web.sessions import Claim, claim_of, confirm

log = logging.getLogger(__name__)

# A client that will resume says so at once; live events wait for that first frame at most this long.
START_WINDOW = 2.0
# Frames a client may send: a steady rate with a burst on top (typing in several tabs, a reconnect).
FRAMES_PER_SECOND, FRAME_BURST = 10.0, 40.0
# One typing notice per conversation per person every so often is all the others need to see.
TYPING_INTERVAL = 2.0
RESUME_INTERVAL = 3.0
_DEFAULT_PORTS = {"http": 80, "https": 443}
# The kernel's send buffer for a console socket. Left to auto-tuning it grows to megabytes for a client that
# stops reading, all of it held for that one client; bounded, a stuck client fills it quickly and then its
# outbox, and is closed at the outbox's limit. Console frames are small: this is ample for a healthy one.
SOCKET_SEND_BUFFER = 128 * 1024


def same_origin(request: web.Request, public_url: str | None) -> bool:
    """Whether the `Origin` header names this server (scheme, host and port): `PUBLIC_URL` when set, else the
    address the request itself names."""
    origin = request.headers.get("Origin")
    if not origin:
        return False
    try:
        given = urlsplit(origin)
        given_port = given.port or _DEFAULT_PORTS.get(given.scheme)
        ours = urlsplit(public_url or f"{request.scheme}://{request.host}")
        our_port = ours.port or _DEFAULT_PORTS.get(ours.scheme)
    except ValueError:
        return False
    return given.scheme == ours.scheme and (given.hostname, given_port) == (ours.hostname, our_port)


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def websocket(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings, db, hub = app[settings_key], app[database_key], app[hub_key]
    if not same_origin(request, settings.public_url):
        log.warning("WebSocket refused: foreign or missing Origin")
        return _refuse(403, "this socket serves pages of this server only")
    if hub.stopping:
        return _refuse(503, "the server is stopping: connect again")
    try:
        claim = await claim_of(request, db, settings)
    except Unavailable:
        return _refuse(503, "temporarily unavailable")
    except DomainError as exc:
        return _refuse(401 if exc.code == "UNAUTHENTICATED" else 403, exc.message)
    if claim.via != "session":
        return _refuse(403, "the console socket is for people signed in with a session")
    # Counted from here, before any wait: opening many at once cannot slip past the limit.
    if not hub.reserve(claim.subject_id, settings.ws_max_sockets_per_user):
        return _refuse(429, "too many open consoles for this user")
    try:
        return await _upgrade(request, claim)
    finally:
        hub.release(claim.subject_id)


async def _upgrade(request: web.Request, claim: Claim) -> web.StreamResponse:
    app = request.app
    settings, db, hub = app[settings_key], app[database_key], app[hub_key]
    try:
        async with tenant_tx(db, claim.tenant_id) as conn:
            caller = await confirm(request, conn, claim)
            user = await users.get_user(conn, user_id=claim.subject_id)
            queue_ids = await queues.member_queue_ids(conn, user_id=claim.subject_id)
    except Unavailable:
        return _refuse(503, "temporarily unavailable")
    except DomainError as exc:
        return _refuse(401 if exc.code == "UNAUTHENTICATED" else 403, exc.message)
    tenant_id_var.set(str(caller.tenant_id))
    user_id_var.set(str(claim.subject_id))
    # Only what the socket's whole life needs stays referenced from here: ~30 KB a socket is the budget.
    name, greeting = user.name, user.model_copy(update={"connected": True}).model_dump(mode="json")
    del user

    # No permessage-deflate, though browsers offer it: a compressor per socket costs ~100 KB (bench/realtime.py),
    # seven times the socket itself, to shrink frames of a few hundred bytes.
    ws = web.WebSocketResponse(heartbeat=settings.ws_heartbeat_seconds, max_msg_size=MAX_CLIENT_FRAME, compress=False)
    await ws.prepare(request)
    raw = request.transport.get_extra_info("socket") if request.transport is not None else None
    if raw is not None:
        raw.setsockopt(SOL_SOCKET, SO_SNDBUF, SOCKET_SEND_BUFFER)
    socket = AgentSocket(
        ws,
        request.transport,
        tenant_id=caller.tenant_id,
        user_id=claim.subject_id,
        role=caller.role,
        name=name,
        session_version=claim.session_version,
        queue_ids=queue_ids,
        queue_limit=settings.ws_send_queue,
        expires_at=claim.issued_at + settings.session_max_hours * 3600,
    )
    instance_id = app[instance_id_key]
    opened = False
    try:
        try:
            position = await hub.join(socket)
            # No wait between joining and this: `hello` is the socket's first frame, whatever comes.
            socket.send(hello_frame(greeting, position, settings.ws_heartbeat_seconds))
            del greeting
            await _opened(db, hub, socket, instance_id)
            opened = True
        except Unavailable:
            socket.close(WSCloseCode.TRY_AGAIN_LATER, "temporarily unavailable")
            return ws
        if hub.stopping:
            socket.close(WSCloseCode.SERVICE_RESTART, "server restarting")
            return ws
        await _serve(request, db, hub, socket)
    finally:
        await hub.leave(socket)
        app[upkeep_key].left(socket.tenant_id)
        if opened:
            try:
                async with tenant_tx(db, socket.tenant_id) as conn:
                    await presence.socket_closed(conn, user_id=socket.user_id, instance_id=instance_id)
            except Exception as exc:  # the lease lapses by itself within the grace period
                log.info("socket close not recorded", extra={"error": type(exc).__name__})
        socket.close(WSCloseCode.GOING_AWAY, "")
        await socket.wait_closed()
    return ws


async def _opened(db: Database, hub: Hub, socket: AgentSocket, instance_id: UUID) -> None:
    """The socket is connected (a presence event if its person was not), and its queues are read again now
    that it is joined: a membership change before the join sent its notice to nobody."""
    async with events.changing(db, hub, socket.tenant_id) as (conn, batch):
        await presence.socket_opened(conn, batch, user_id=socket.user_id, instance_id=instance_id)
        queue_ids = await queues.member_queue_ids(conn, user_id=socket.user_id)
    hub.reindex(socket, queue_ids)


async def _set_status(db: Database, hub: Hub, socket: AgentSocket, status: AgentStatus) -> None:
    async with events.changing(db, hub, socket.tenant_id) as (conn, batch):
        await presence.set_status(conn, batch, user_id=socket.user_id, status=status)


class _FrameBudget:
    """A token bucket over the frames one socket sends."""

    def __init__(self) -> None:
        self._tokens = FRAME_BURST
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(FRAME_BURST, self._tokens + (now - self._at) * FRAMES_PER_SECOND)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


async def _serve(request: web.Request, db: Database, hub: Hub, socket: AgentSocket) -> None:
    ws = socket.ws
    last_resume = -RESUME_INTERVAL
    given = request.query.get("last_seq", "")
    if given.isdigit() and len(given) < 19:
        socket.started = True
        last_resume = time.monotonic()
        await hub.resume(socket, int(given))
    else:
        asyncio.get_running_loop().call_later(START_WINDOW, _let_go, socket)
    budget = _FrameBudget()
    typed: dict[UUID, float] = {}
    async for message in ws:
        if message.type == WSMsgType.BINARY:
            socket.close(WSCloseCode.UNSUPPORTED_DATA, "frames are JSON text")
            break
        if message.type != WSMsgType.TEXT:
            break  # ERROR (a frame over the limit: aiohttp closes with 1009) or the peer's close
        if not budget.take():
            log.warning("socket closed: too many frames")
            socket.close(WSCloseCode.POLICY_VIOLATION, "too many messages")
            break
        try:
            data = orjson.loads(message.data)
        except orjson.JSONDecodeError:
            socket.close(WSCloseCode.UNSUPPORTED_DATA, "frames are JSON objects")
            break
        kind = data.get("type") if isinstance(data, dict) else None
        if kind not in CLIENT_FRAME_TYPES:
            socket.close(WSCloseCode.POLICY_VIOLATION, "unknown message type")
            break
        try:
            frame = CLIENT_FRAME.validate_python(data)
        except ValidationError as exc:
            problem = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(part) for part in problem["loc"][1:])
            socket.send(error_frame("VALIDATION_ERROR", f"{where}: {problem['msg']}" if where else problem["msg"]))
            continue
        if isinstance(frame, Resume):
            late, socket.started = socket.started, True
            # A replay can read thousands of events: one every few seconds is plenty for a real client.
            if time.monotonic() - last_resume < RESUME_INTERVAL:
                socket.send(error_frame("RATE_LIMITED", "resume at most once every few seconds"))
                continue
            last_resume = time.monotonic()
            await hub.resume(socket, frame.last_seq, late=late)
            continue
        _let_go(socket)
        try:
            if isinstance(frame, PresenceChange):
                await _set_status(db, hub, socket, frame.status)
            elif isinstance(frame, TypingNotice):
                await _relay_typing(db, hub, socket, frame.conversation_id, typed)
            elif isinstance(frame, WatchWallboard):
                if not socket.sees_all:
                    raise Forbidden("the wallboard is for supervisors and admins")
                hub.watch_board(socket)
            else:
                socket.send(PONG)
        except DomainError as exc:
            socket.send(error_frame(exc.code, exc.message))


def _let_go(socket: AgentSocket) -> None:
    """The client did not resume: it starts from `hello`'s seq, and the events held meanwhile follow."""
    if not socket.started:
        socket.started = True
        socket.go_live()


async def _relay_typing(
    db: Database, hub: Hub, socket: AgentSocket, conversation_id: UUID, typed: dict[UUID, float]
) -> None:
    """Tells the conversation's other followers that this person is typing; rate-limited per conversation."""
    now = time.monotonic()
    if now - typed.get(conversation_id, -TYPING_INTERVAL) < TYPING_INTERVAL:
        return
    typed[conversation_id] = now
    if len(typed) > 100:
        typed.clear()
    viewer = Viewer(tenant_id=socket.tenant_id, role=socket.role, user_id=socket.user_id)
    async with tenant_tx(db, socket.tenant_id) as conn:
        audience = await reading.followers(conn, viewer=viewer, conversation_id=conversation_id)
    hub.notify(socket.tenant_id, wire.Typing(conversation_id, socket.user_id, socket.name, audience))

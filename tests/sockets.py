"""Console sockets as a browser tab opens them: signed in with the tab's cookie, from the server's own origin."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from tests.api import Api


def origin_of(api: Api) -> str:
    url = api.client.make_url("/")
    return f"{url.scheme}://{url.host}:{url.port}"


class Console:
    """One open `/ws`: its `hello`, and the frames that follow."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, hello: dict[str, Any]) -> None:
        self.ws = ws
        self.hello = hello

    @property
    def last_seq(self) -> int:
        return int(self.hello["data"]["last_seq"])

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(frame).decode())

    async def frame(self, within: float = 5.0) -> dict[str, Any]:
        message = await self.ws.receive(timeout=within)
        if message.type != aiohttp.WSMsgType.TEXT:
            pytest.fail(f"expected a frame, got {message.type.name} {message.data!r} {message.extra!r}")
        frame: dict[str, Any] = orjson.loads(message.data)
        return frame

    async def event(self, name: str | None = None, within: float = 5.0) -> dict[str, Any]:
        """The next event frame (of that name: others are skipped)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                pytest.fail(f"no {name or 'event'} within {within} s")
            try:
                frame = await self.frame(within=left)
            except TimeoutError:
                pytest.fail(f"no {name or 'event'} within {within} s")
            if frame["type"] == "event" and (name is None or frame["event"] == name):
                return frame

    async def reply(self, within: float = 5.0) -> dict[str, Any]:
        """The next frame that is not an event (an answer to what this client sent)."""
        deadline = asyncio.get_running_loop().time() + within
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            frame = await self.frame(within=left)
            if frame["type"] != "event":
                return frame
        pytest.fail(f"no reply within {within} s")

    async def presence_of(self, user_id: object, within: float = 5.0) -> dict[str, Any]:
        """The next `agent.presence` event about this user (others' are skipped)."""
        deadline = asyncio.get_running_loop().time() + within
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            event = await self.event("agent.presence", within=left)
            if event["data"]["user_id"] == str(user_id):
                return event
        pytest.fail(f"no presence of {user_id} within {within} s")

    async def quiet_about_conversations(self, seconds: float = 0.5) -> list[dict[str, Any]]:
        """The events within `seconds` about conversations and their messages (not presence, as people connect
        and leave during a test, nor changes of queues)."""
        return [
            f
            for f in await self.quiet(seconds)
            if f["type"] == "event" and f["event"] != "agent.presence" and not f["event"].startswith("queue.")
        ]

    async def quiet(self, seconds: float = 0.5) -> list[dict[str, Any]]:
        """Every frame that arrives within `seconds` (often: to show there is none)."""
        frames = []
        deadline = asyncio.get_running_loop().time() + seconds
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                message = await self.ws.receive(timeout=left)
            except TimeoutError:
                break
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            frames.append(orjson.loads(message.data))
        return frames

    async def closed(self, within: float = 5.0) -> int | None:
        """Waits for the server to close the socket; its close code."""
        deadline = asyncio.get_running_loop().time() + within
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                message = await self.ws.receive(timeout=left)
            except TimeoutError:
                break
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return self.ws.close_code
            if message.type == aiohttp.WSMsgType.ERROR:
                return self.ws.close_code
        pytest.fail(f"the socket stayed open for {within} s")

    async def close(self) -> None:
        await self.ws.close()


async def open_console(
    api: Api, *, origin: str | None = None, last_seq: int | None = None, resume: int | None = None
) -> Console:
    """Opens `/ws` as the console's script does and reads its `hello`: `resume` (or `last_seq` in the URL) asks
    for what was missed; without either, the client resumes from `hello`'s seq, which lets live events flow
    at once."""
    path = "/ws" if last_seq is None else f"/ws?last_seq={last_seq}"
    ws = await api.client.ws_connect(path, origin=origin or origin_of(api), autoping=True)
    if resume is not None:
        await ws.send_str(orjson.dumps({"type": "resume", "last_seq": resume}).decode())
    message = await ws.receive(timeout=5)
    assert message.type == aiohttp.WSMsgType.TEXT, (message.type, message.data)
    hello = orjson.loads(message.data)
    assert hello["type"] == "hello", hello
    if resume is None and last_seq is None:
        await ws.send_str(orjson.dumps({"type": "resume", "last_seq": hello["data"]["last_seq"]}).decode())
    return Console(ws, hello)

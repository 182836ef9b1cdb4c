"""`fiv-console demo`: a seeded tenant and simulated customers writing in, so a new user sees a live console.

Run as the real command against the test server's PostgreSQL (a database of its own): the embedded start
is covered by tests/test_embedded.py. The demo's agent then answers through the in-process simulator.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from fiv_console.serving import free_port
from fiv_console.simulation.demo_seed import DEMO_LOGINS, DEMO_WORKSPACE
from tests.conftest import TestDatabase, migrate_database, project_root

START_DEADLINE_SECONDS = 60.0


async def _first_waiting_conversation(owner_url: str, deadline: float) -> str:
    conn = await asyncpg.connect(owner_url)
    try:
        while time.monotonic() < deadline:
            found = await conn.fetchval("select id::text from conversations where status = 'waiting' limit 1")
            if found is not None:
                return str(found)
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    pytest.fail("no simulated customer wrote in time")


async def test_the_demo_has_customers_writing_and_an_agent_can_answer(
    fresh_database: TestDatabase, tmp_path: Path
) -> None:
    await migrate_database(fresh_database.owner_url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PORT", "HOST", "WHATSAPP_APP_SECRET")}
    env.update(DATABASE_URL=fresh_database.owner_url, FIV_DATA_DIR=str(tmp_path), LOG_LEVEL="WARNING")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fiv_console",
        "demo",
        "--port",
        str(port),
        env=env,
        cwd=project_root(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        conversation_id = await _first_waiting_conversation(fresh_database.owner_url, deadline)
        agent = next(login for login in DEMO_LOGINS if login.role == "agent" and "Support" in login.queues)
        base = f"http://127.0.0.1:{port}"
        # The session cookie comes from an IP address, which aiohttp's default jar refuses to keep.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.post(
                f"{base}/api/auth/login",
                json={"workspace": DEMO_WORKSPACE, "email": agent.email, "password": agent.password},
            ) as r:
                assert r.status == 200, await r.text()
                csrf = (await r.json())["data"]["csrf_token"]
            headers = {"X-CSRF-Token": csrf}
            async with http.post(f"{base}/api/conversations/{conversation_id}/assign", json={}, headers=headers) as r:
                assert r.status == 200, await r.text()
            async with http.post(
                f"{base}/api/conversations/{conversation_id}/messages", json={"text": "Hi!"}, headers=headers
            ) as r:
                assert r.status == 201, await r.text()
                assert (await r.json())["data"]["status"] == "sent"
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert b"Simulated customers write" in out
    assert f"workspace {DEMO_WORKSPACE} (tenant ".encode() in out

"""`/webhooks/whatsapp`: Meta's verification handshake (GET). Intake (POST) comes with the WhatsApp issue."""

from __future__ import annotations

import hmac
import logging
import re

from aiohttp import web

from fiv_console.keys import settings_key

log = logging.getLogger(__name__)

# Meta's challenge is a number; echoing anything wider back would make this URL reflect arbitrary text.
_CHALLENGE = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")


async def verify_subscription(request: web.Request) -> web.Response:
    """200 with the bare `hub.challenge` when the mode is `subscribe` and the token is ours; else 403."""
    configured = request.app[settings_key].whatsapp_verify_token
    if configured is None:
        log.warning("webhook verification refused: WHATSAPP_VERIFY_TOKEN is not set")
        raise web.HTTPForbidden(text="webhook verification is not configured")
    mode = request.query.get("hub.mode", "")
    token = request.query.get("hub.verify_token", "")
    challenge = request.query.get("hub.challenge", "")
    token_matches = hmac.compare_digest(token.encode(), configured.get_secret_value().encode())
    if mode != "subscribe" or not token_matches or not _CHALLENGE.match(challenge):
        log.warning("webhook verification refused", extra={"mode": mode[:32]})
        raise web.HTTPForbidden(text="verification refused")
    log.info("webhook verification accepted")
    return web.Response(text=challenge, content_type="text/plain")

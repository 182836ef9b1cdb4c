"""`/webhooks/whatsapp`: Meta's verification handshake (GET) and the signed webhook intake (POST).

The POST answers 200 only once what it carried is committed (`fiv_console.messages.intake`): anything
else makes Meta deliver it again, which is what a database outage needs (503) and what a wrong signature
gets (401, nothing written). A signed body that cannot be stored as messages is kept as a dead letter and
answered 200, since Meta would only send the same bytes again for 7 days; a character in it that is not
Unicode is replaced where it is (`whatsapp.payloads`), and only logged here.
"""

from __future__ import annotations

import hmac
import logging
import re

from aiohttp import web

from fiv_console.errors import Unavailable
from fiv_console.keys import database_key, intake_key, settings_key
from fiv_console.messages import dead_letters
from fiv_console.observability.metrics import (
    WEBHOOK_DEAD_LETTERS,
    WEBHOOK_DUPLICATES,
    WEBHOOK_MESSAGES,
    WEBHOOK_STATUSES,
)
from fiv_console.web import anonymous_bodies
from fiv_console.web.bodies import read_body
from fiv_console.whatsapp.payloads import WebhookPayloadError, parse_webhook
from fiv_console.whatsapp.signature import SIGNATURE_HEADER, signature_matches

log = logging.getLogger(__name__)

# Meta's challenge is a number; echoing anything wider back would make this URL reflect arbitrary text.
_CHALLENGE = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
_RETRY_AFTER_SECONDS = "5"


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


async def receive(request: web.Request) -> web.Response:
    """Signed intake: 401 for a bad signature, 413 for an oversized body, 503 while the database is away."""
    app_secret = request.app[settings_key].whatsapp_app_secret
    if app_secret is None:
        log.error("webhook refused: WHATSAPP_APP_SECRET is not set, so no signature can be checked")
        raise web.HTTPServiceUnavailable(text="webhook intake is not configured")
    body = await read_body(request)  # read and limited by its guard (`app.py`) before this runs
    if not signature_matches(app_secret.get_secret_value().encode(), body, request.headers.get(SIGNATURE_HEADER)):
        log.warning("webhook refused: signature missing or wrong")
        raise web.HTTPUnauthorized(text="invalid signature")
    # Meta has proven itself: storing its batch no longer takes room meant for bodies nobody has vouched for,
    # so its bursts are limited by how fast they arrive, not by how long their transactions take.
    anonymous_bodies.proven(request)

    db = request.app[database_key]
    try:
        try:
            batch = parse_webhook(body)
        except WebhookPayloadError as exc:
            async with db.connection() as conn:
                await dead_letters.keep(conn, reason="unparseable", body=body, phone_number_id=None, detail=str(exc))
            log.warning("signed webhook that is not a webhook kept as a dead letter", extra={"problem": str(exc)})
            return web.Response(text="kept")
        if batch.repaired:
            log.warning("webhook with characters that are not Unicode: each replaced with U+FFFD where it was")
        result = await request.app[intake_key].ingest(batch, body=body)
        WEBHOOK_MESSAGES.inc(result.messages_stored)
        WEBHOOK_STATUSES.inc(result.statuses_recorded)
        WEBHOOK_DUPLICATES.inc(result.duplicates)
        WEBHOOK_DEAD_LETTERS.inc(result.dead_letters)
    except Unavailable:
        log.warning("webhook not stored: the database is unavailable; Meta will retry")
        raise web.HTTPServiceUnavailable(
            text="temporarily unavailable", headers={"Retry-After": _RETRY_AFTER_SECONDS}
        ) from None
    log.info(
        "webhook stored",
        extra={
            "messages": result.messages_stored,
            "duplicates": result.duplicates,
            "statuses": result.statuses_recorded,
            "dead_letters": result.dead_letters,
        },
    )
    return web.Response(text="ok")

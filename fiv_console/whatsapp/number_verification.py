"""Proof that a tenant may connect a business number: WhatsApp shows the number to its access token.

A webhook's `phone_number_id` alone decides which tenant receives it. Were connecting a number a matter of
typing its id, any tenant's admin could claim another company's number (or one not connected yet) and read
its customers' messages. So a number connected through the API must come with an access token that the
Graph API accepts for that very number. Operators connecting numbers from the command line are trusted.
"""

from __future__ import annotations

from fiv_console.errors import InvalidInput, Unavailable
from fiv_console.routing.channels import ChannelCreate
from fiv_console.whatsapp.client import GraphClient, GraphError

_TOKEN_FIELD = "body.access_token"  # noqa: S105 - the name of a field, not a secret


async def confirm(client: GraphClient, data: ChannelCreate) -> None:
    """Returns when WhatsApp confirms the token may use the number; `InvalidInput` (or `Unavailable`) if not."""
    if data.access_token is None:
        raise InvalidInput(
            "an access token is needed to connect a number: WhatsApp is asked to confirm it may use the number",
            details=[{"field": _TOKEN_FIELD, "message": "required"}],
        )
    try:
        number = await client.phone_number_info(data.phone_number_id, data.access_token.get_secret_value())
    except GraphError as exc:
        if exc.retryable:
            raise Unavailable("WhatsApp could not be asked to confirm the number; try again shortly") from exc
        raise InvalidInput(
            f"WhatsApp did not confirm that this access token may use this number: {exc.reason}",
            details=[{"field": _TOKEN_FIELD, "message": "not accepted by WhatsApp for this number"}],
        ) from exc
    if number.id != data.phone_number_id:
        raise InvalidInput(
            "WhatsApp answered for another number than the one given",
            details=[{"field": "body.phone_number_id", "message": "does not match WhatsApp's answer"}],
        )

"""Which templates a channel offers, and a template reply checked against them before it is stored.

A conversation's templates are its channel's approved ones (anyone who sees the conversation may list
them); a channel's, all of them whatever their status (admins). They come from the channel's business
account through the per-process `TemplateCache`, so no database connection is held while Meta is asked:
the channel's account and token are read in a short transaction first.

A channel without a business account id (`waba_id`) or without a token lists no template, and says why
(`unavailable`); a template send through it is refused (409). When Meta cannot be asked and a copy was
kept, that copy answers, `stale`, with its age and the reason; without one, a network failure or a Meta
error that may pass is 503, and Meta refusing the account or token (a wrong id, an expired token) is 409
naming Meta's code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from fiv_console.access import VISIBLE_CONVERSATION_SQL, Viewer
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.errors import Conflict, DomainError, NotFound, Unavailable
from fiv_console.messages.outbound import TemplateRequest, check_may_reply
from fiv_console.whatsapp.client import GraphError
from fiv_console.whatsapp.template_cache import Catalog, TemplateCache
from fiv_console.whatsapp.template_messages import ComposedTemplate, TemplateMismatch, choose, compose
from fiv_console.whatsapp.templates import TemplateView

Unavailability = Literal["no_waba_id", "no_access_token"]
_RECHECK_AFTER_SECONDS = 60
_UNAVAILABLE: dict[Unavailability, str] = {
    "no_waba_id": "this number has no WhatsApp Business Account id: an admin must set the channel's waba_id",
    "no_access_token": "this number has no access token: an admin must set one",
}


class ChannelTemplates(BaseModel):
    """A channel's templates, and how fresh they are."""

    channel_id: UUID
    waba_id: str | None
    templates: list[TemplateView]
    unavailable: Unavailability | None = Field(
        description="Why there are no templates to show: the channel has no business account id or no token."
    )
    message: str | None = Field(description="The reason in a sentence (unavailable, or why a copy is stale).")
    fetched_at: datetime | None = Field(description="When the list was fetched from WhatsApp.")
    age_seconds: int | None
    stale: bool = Field(description="WhatsApp could not be asked again: this is the copy kept, `age_seconds` old.")


_CONVERSATION_CHANNEL_SQL = f"""
select ch.id as channel_id, ch.waba_id, ch.access_token
from conversations c join channels ch on ch.tenant_id = c.tenant_id and ch.id = c.channel_id
where c.id = $3 and {VISIBLE_CONVERSATION_SQL}
"""
_CHANNEL_SQL = "select id as channel_id, waba_id, access_token from channels where id = $1"
# What a reply needs checked before its templates are fetched (outbound.check_may_reply), without a lock:
# the send checks it again under the conversation's lock.
_REPLY_TARGET_SQL = f"""
select c.status, c.agent_id, c.channel_id, ch.active as channel_active, ch.access_token, ch.waba_id
from conversations c join channels ch on ch.tenant_id = c.tenant_id and ch.id = c.channel_id
where c.id = $3 and {VISIBLE_CONVERSATION_SQL}
"""


def _failure(exc: GraphError) -> DomainError:
    if exc.code is not None and not exc.retryable:
        message = f"WhatsApp did not list this number's templates: {exc.reason}"
        return Conflict(message, details={"whatsapp_code": exc.code})
    return Unavailable(f"WhatsApp could not be asked for this number's templates: {exc.reason}")


async def _catalog(cache: TemplateCache, channel: Any, *, refresh: bool) -> Catalog:
    try:
        return await cache.get(channel["channel_id"], channel["waba_id"], channel["access_token"], refresh=refresh)
    except GraphError as exc:
        raise _failure(exc) from exc


async def _answer(cache: TemplateCache, channel: Any, *, refresh: bool, approved_only: bool) -> ChannelTemplates:
    reason: Unavailability | None = (
        "no_waba_id" if channel["waba_id"] is None else "no_access_token" if channel["access_token"] is None else None
    )
    base = {"channel_id": channel["channel_id"], "waba_id": channel["waba_id"]}
    if reason is not None:
        return ChannelTemplates(
            **base,
            templates=[],
            unavailable=reason,
            message=_UNAVAILABLE[reason],
            fetched_at=None,
            age_seconds=None,
            stale=False,
        )
    catalog = await _catalog(cache, channel, refresh=refresh)
    templates = [t for t in catalog.templates if t.status == "APPROVED" or not approved_only]
    return ChannelTemplates(
        **base,
        templates=sorted(templates, key=lambda t: (t.name, t.language)),
        unavailable=None,
        message=catalog.stale_reason,
        fetched_at=catalog.fetched_at,
        age_seconds=round(cache.age(catalog)),
        stale=catalog.stale,
    )


async def for_conversation(
    db: Database, cache: TemplateCache, *, viewer: Viewer, conversation_id: UUID, refresh: bool
) -> ChannelTemplates:
    """The approved templates of the conversation's channel; 404 if the viewer does not see it."""
    async with tenant_tx(db, viewer.tenant_id) as conn:
        channel = await conn.fetchrow(_CONVERSATION_CHANNEL_SQL, *viewer.sight.params(), conversation_id)
    if channel is None:
        raise NotFound("no such conversation")
    return await _answer(cache, channel, refresh=refresh, approved_only=True)


async def for_channel(
    db: Database, cache: TemplateCache, *, tenant_id: UUID, channel_id: UUID, refresh: bool
) -> ChannelTemplates:
    """Every template of the channel's account, whatever its status (for admins)."""
    async with tenant_tx(db, tenant_id) as conn:
        channel = await conn.fetchrow(_CHANNEL_SQL, channel_id)
    if channel is None:
        raise NotFound("no such channel")
    return await _answer(cache, channel, refresh=refresh, approved_only=False)


async def compose_reply(
    db: Database, cache: TemplateCache, *, viewer: Viewer, conversation_id: UUID, request: TemplateRequest
) -> tuple[UUID, ComposedTemplate]:
    """The reply checked against its template (fetched if not kept): the channel it is for, and what to send.

    Who may reply is checked first, so a person who may not reply learns that, not what the template lacks."""
    async with tenant_tx(db, viewer.tenant_id) as conn:
        row = check_may_reply(viewer, await conn.fetchrow(_REPLY_TARGET_SQL, *viewer.sight.params(), conversation_id))
    if row["waba_id"] is None:
        raise Conflict(_UNAVAILABLE["no_waba_id"] + " before templates can be sent", details={"reason": "no_waba_id"})
    channel = {"channel_id": row["channel_id"], "waba_id": row["waba_id"], "access_token": row["access_token"]}
    catalog = await _catalog(cache, channel, refresh=False)
    try:
        template = choose(catalog.templates, request.name, request.language)
    except TemplateMismatch:
        # A template approved (or added) since the list was kept is looked for once more, at most once a minute.
        if catalog.stale or cache.age(catalog) < _RECHECK_AFTER_SECONDS:
            raise
        catalog = await _catalog(cache, channel, refresh=True)
        template = choose(catalog.templates, request.name, request.language)
    composed = compose(template, parameters=request.parameters, header=request.header, buttons=request.buttons)
    return row["channel_id"], composed

"""The simulator keeps up with Meta (issue #16, point 11): every webhook it emits is parsed by a maintained
third-party client library, pywa (a test dependency), and pywa's own Graph API client drives its sends.

pywa reads webhooks as Meta documents them today: contacts with business-scoped user ids (`user_id`, a
`profile.username` for users with one), statuses with their `contacts`, per-message pricing; it sends to a
user known only by BSUID with `recipient` instead of `to`. A simulator that drifted from that would fail
here, not in production.

Groups: pywa 4.5.0 reads a group's info (`GroupDetails`, from "Get group info") but has no update type for
the group webhooks (`group_lifecycle_update`, `group_settings_update`: no handler takes those fields). Those
bodies are checked against Meta's "Webhooks for Groups API" instead
(https://developers.facebook.com/documentation/business-messaging/whatsapp/groups/webhooks): pywa's
`RawUpdate` reads them, pywa says it has no handler (so a pywa that gains one fails here, to be used), and
our parser finds the group and its subject in each.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from pywa import WhatsApp
from pywa.types.base_update import RawUpdate

from fiv_console.simulation.cloud_api import SimulatorServer
from fiv_console.simulation.envelopes import simulated_user_id
from fiv_console.simulation.traffic import TrafficConfig, TrafficGenerator
from fiv_console.whatsapp.payloads import GROUP_FIELDS, parse_webhook
from tests.test_simulator import DISPLAY, PNID, SECRET, TOKEN, Console, config
from tests.test_simulator import console as console  # the fixture, shared

CUSTOMER = "5511987654321"


@contextmanager
def _pywa(graph_url: str | None = None) -> Iterator[WhatsApp]:
    session = httpx.Client()
    client = WhatsApp(phone_id=PNID, token=TOKEN, session=session, server=None, verify_token=None, filter_updates=False)
    if graph_url is not None:
        session.base_url = graph_url  # the simulator in place of graph.facebook.com
    with session:
        yield client


def _parsed_by_pywa(client: WhatsApp, body: bytes) -> Any:
    """pywa's update for a webhook body, as its server would build it; raises what pywa raises."""
    raw = RawUpdate(body, hmac_header=None, update_hash="test")
    handler = client._get_handler_type(raw)
    if raw.field in GROUP_FIELDS:  # pywa 4.5.0 has no type for these (see above)
        assert handler is None, "pywa reads group webhooks now: parse them with it"
        assert raw.value["groups"][0]["group_id"]
        [change] = parse_webhook(body).groups
        assert change.subject or change.description is not None, body
        return raw
    assert handler is not None, body
    return client._handlers_to_updates[handler].from_update(client=client, update=raw)


async def test_pywa_reads_every_webhook_of_a_traffic_run(console: Console) -> None:
    async with SimulatorServer(config(console)) as server:
        traffic = TrafficConfig(
            webhook_url=console.url,
            app_secret=SECRET,
            phone_number_id=PNID,
            display_number=DISPLAY,
            rate=400,
            customers=12,
            duration=0.5,
            seed=16,
        )
        generator = TrafficGenerator(traffic, counterpart=server.simulator)
        stats = await generator.run()
        assert stats.acknowledged == 200
        # The business answers some of them through the Graph API, by number and by BSUID: their statuses
        # come back as webhooks too.
        with _pywa(server.graph_url) as client:
            for customer in generator.customers[:6]:
                await asyncio.to_thread(client.send_message, to=customer.address, text="We're looking into it.")
        await console.wait_for(200 + 6 * 2)

    kinds: Counter[str] = Counter()
    with _pywa() as reader:
        for body in console.bodies:
            kinds[type(_parsed_by_pywa(reader, body)).__name__] += 1  # raises on anything pywa cannot read
    for body in console.bodies:
        batch = parse_webhook(body)
        assert all(m.problem is None for m in batch.messages), body
        assert all(s.problem is None for s in batch.statuses), body
    assert sum(kinds.values()) == len(console.bodies)
    # Every kind the traffic plays, as pywa names them.
    assert {"Message", "MessageStatus", "EditedMessage", "DeletedMessage", "OutgoingMessage"} <= set(kinds), kinds
    assert kinds["RawUpdate"] == stats.kinds["group_rename"] > 0, kinds  # the group webhooks, read as above
    assert any(c.hides_number for c in generator.customers)
    hidden = [b for b in console.bodies if b'"wa_id"' not in b and b"message_echoes" not in b]
    assert hidden, "no webhook of a customer known by username only"


async def test_pywa_sends_through_the_simulator_as_through_meta(console: Console) -> None:
    bsuid = simulated_user_id(CUSTOMER)
    async with SimulatorServer(config(console)) as server:
        with _pywa(server.graph_url) as client:
            by_number = await asyncio.to_thread(client.send_message, to=CUSTOMER, text="Hello")
            by_bsuid = await asyncio.to_thread(client.send_message, to=bsuid, text="Hello by username")
            reaction = await asyncio.to_thread(client.send_reaction, to=CUSTOMER, emoji="👍", message_id=by_number.id)
            image = await asyncio.to_thread(
                client.send_image, to=bsuid, image="https://example.com/a.jpg", caption="by link"
            )
        await console.wait_for(4 * 2)

    sent = {m.wamid: m for m in server.simulator.sent}
    assert "to" in sent[by_number.id].request
    assert "recipient" not in sent[by_number.id].request
    # Meta's rule for a user known by BSUID: `recipient`, no `to`; the simulator answers with the BSUID.
    assert sent[by_bsuid.id].request["recipient"] == bsuid
    assert "to" not in sent[by_bsuid.id].request
    assert sent[reaction.id].request["reaction"] == {"message_id": by_number.id, "emoji": "👍"}
    assert sent[image.id].request["image"]["link"] == "https://example.com/a.jpg"
    statuses = [s for body in console.bodies for s in parse_webhook(body).statuses]
    to_bsuid = [s for s in statuses if s.wa_message_id == by_bsuid.id]
    assert to_bsuid
    assert all(s.recipient_id is None and s.raw["recipient_user_id"] == bsuid for s in to_bsuid)
    with _pywa() as reader:
        for body in console.bodies:
            assert _parsed_by_pywa(reader, body).from_user.bsuid == bsuid


@pytest.mark.parametrize("to", ["US.13491208655302741918", "US.ENT.11815799212886844830"])
def test_our_client_sends_to_a_bsuid_as_recipient(to: str) -> None:
    from fiv_console.whatsapp.client import text_payload

    payload = text_payload(to, "hi")
    assert payload["recipient"] == to
    assert "to" not in payload
    assert "to" in text_payload("5511987654321", "hi")


async def test_pywa_reads_a_group_from_the_simulator_as_from_meta(console: Console) -> None:
    """ "Get group info" (developers.facebook.com/documentation/business-messaging/whatsapp/groups/reference
    #get-group-info), read by pywa's `get_group` (`GroupDetails`), and renamed as a settings change would."""
    async with SimulatorServer(config(console)) as server:
        group = server.simulator.groups.create("Order 4471: delivery", participants=[CUSTOMER])
        with _pywa(server.graph_url) as client:
            details = await asyncio.to_thread(client.get_group, group.id)
            server.simulator.groups.rename(group.id, "Order 4471: returns", "Returns of the order")
            renamed = await asyncio.to_thread(client.get_group, group.id)
            with pytest.raises(Exception, match="does not exist"):
                await asyncio.to_thread(client.get_group, "Y2FwaV9ncm91cDpub25lOjA")
    assert (details.id, details.subject, details.description) == (group.id, "Order 4471: delivery", None)
    assert [(p.wa_id, p.bsuid) for p in details.participants] == [(CUSTOMER, simulated_user_id(CUSTOMER))]
    assert details.total_participant_count == 1
    assert (renamed.subject, renamed.description) == ("Order 4471: returns", "Returns of the order")

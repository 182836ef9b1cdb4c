"""The tenant's own details and settings through the API (`/api/tenant`, `/api/tenant/settings`): who may
read and change them, partial changes validated field by field, `null` turning an optional setting off,
the audit entry with every value before and after, and another tenant left untouched. Also the filters the
administration pages need of older routes: the audit log by time, the queues of one member."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from fiv_console.accounts.tenant_settings import TenantSettingsChange
from fiv_console.accounts.tenants import TenantSettings, get_tenant
from fiv_console.db.pool import Database, tenant_tx
from tests.api import Browsers, TenantPeople


async def _stored(db: Database, tenant: TenantPeople) -> dict[str, object]:
    async with tenant_tx(db, tenant.id) as conn:
        settings: dict[str, object] = await conn.fetchval("select settings from tenants where id = $1", tenant.id)
    return settings


def _fields(answer_body: dict[str, object]) -> set[tuple[str, str]]:
    details = (answer_body.get("error") or {}).get("details") or []  # type: ignore[attr-defined]
    return {(d["field"], d["type"]) for d in details}


def test_every_setting_the_engine_reads_can_be_changed() -> None:
    assert set(TenantSettingsChange.model_fields) == set(TenantSettings.model_fields)


async def test_staff_read_the_settings_and_only_admins_change_them(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    supervisor = await browsers.signed_in(tenant.supervisor)
    agent = await browsers.signed_in(tenant.agent)
    assert (await supervisor.get("/api/tenant/settings")).data == TenantSettings().model_dump()
    assert (await supervisor.get("/api/tenant")).data["id"] == str(tenant.id)
    for path in ("/api/tenant/settings", "/api/tenant"):
        assert (await agent.get(path)).code == "FORBIDDEN"
        for api in (agent, supervisor):
            assert (await api.patch(path, {"name": "Theirs"} if path == "/api/tenant" else {})).code == "FORBIDDEN"
    assert (await supervisor.patch("/api/tenant/settings", {"prefer_last_agent": True})).code == "FORBIDDEN"
    assert (await admin.get("/api/tenant/settings")).data["prefer_last_agent"] is False


async def test_a_partial_change_is_stored_audited_and_answers_everything(
    db: Database, browsers: Browsers, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    change = {
        "unanswered_reroute_seconds": 120,
        "prefer_last_agent": True,
        "queue_position_reply": " You are {position} ",
    }
    answer = await admin.patch("/api/tenant/settings", change)
    expected = TenantSettings(
        unanswered_reroute_seconds=120, prefer_last_agent=True, queue_position_reply="You are {position}"
    )
    assert answer.data == expected.model_dump()
    async with tenant_tx(db, tenant.id) as conn:
        read = await get_tenant(conn, tenant_id=tenant.id)
    assert read is not None
    assert read.settings == expected

    # Left out: unchanged. `null`: an optional setting turned off.
    answer = await admin.patch("/api/tenant/settings", {"unanswered_reroute_seconds": None})
    assert answer.data == expected.model_copy(update={"unanswered_reroute_seconds": None}).model_dump()

    entries = (await admin.get("/api/audit-log?action=tenant.settings_changed")).data
    assert [e["details"]["changes"] for e in entries] == [
        {"unanswered_reroute_seconds": {"from": 120, "to": None}},
        {
            "prefer_last_agent": {"from": False, "to": True},
            "queue_position_reply": {"from": None, "to": "You are {position}"},
            "unanswered_reroute_seconds": {"from": None, "to": 120},
        },
    ]
    assert entries[0]["actor_id"] == str(tenant.admin.id)
    assert entries[0]["target_id"] == str(tenant.id)
    # A change to what is already there changes nothing and writes no entry.
    assert (await admin.patch("/api/tenant/settings", {"prefer_last_agent": True})).status == 200
    assert len((await admin.get("/api/audit-log?action=tenant.settings_changed")).data) == 2

    # Row-level security: the other tenant's settings are as they were.
    assert await _stored(db, other_tenant) == TenantSettings().model_dump()
    other_admin = await browsers.signed_in(other_tenant.admin)
    assert (await other_admin.get("/api/tenant/settings")).data == TenantSettings().model_dump()
    assert (await other_admin.get("/api/audit-log?action=tenant.settings_changed")).data == []


async def test_bad_settings_are_refused_field_by_field_and_nothing_changes(
    db: Database, browsers: Browsers, tenant: TenantPeople
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    before = await _stored(db, tenant)
    refusals = [
        ({"no_such_setting": 1}, {("body.no_such_setting", "extra_forbidden")}),
        ({"unanswered_reroute_seconds": 29}, {("body.unanswered_reroute_seconds", "greater_than_equal")}),
        ({"agents_can_take_waiting": None}, {("body.agents_can_take_waiting", "bool_type")}),
        ({"offline_conversations": "drop"}, {("body.offline_conversations", "literal_error")}),
        ({"inactivity_close_message": "   "}, {("body.inactivity_close_message", "string_too_short")}),
        (
            {"prefer_last_agent": True, "priority_rise_seconds": 0, "requeue_after_seconds": -1},
            {
                ("body.priority_rise_seconds", "greater_than_equal"),
                ("body.requeue_after_seconds", "greater_than_equal"),
            },
        ),
    ]
    for body, fields in refusals:
        answer = await admin.patch("/api/tenant/settings", body)
        assert (answer.status, answer.code) == (400, "VALIDATION_ERROR"), body
        assert _fields(answer.body) == fields
    assert (await admin.patch("/api/tenant/settings", [1])).status == 400
    assert await _stored(db, tenant) == before
    assert (await admin.get("/api/audit-log?action=tenant.settings_changed")).data == []


async def test_a_setting_this_version_does_not_know_is_kept(
    db: Database, browsers: Browsers, tenant: TenantPeople
) -> None:
    async with tenant_tx(db, tenant.id) as conn:
        await conn.execute(
            "update tenants set settings = settings || '{\"from_a_newer_version\": 7}'::jsonb where id = $1", tenant.id
        )
    admin = await browsers.signed_in(tenant.admin)
    answer = await admin.patch("/api/tenant/settings", {"priority_rise_seconds": 60})
    assert "from_a_newer_version" not in answer.data
    stored = await _stored(db, tenant)
    assert (stored["from_a_newer_version"], stored["priority_rise_seconds"]) == (7, 60)


async def test_an_admin_renames_the_tenant_and_changes_its_time_zone(
    browsers: Browsers, tenant: TenantPeople, other_tenant: TenantPeople
) -> None:
    admin = await browsers.signed_in(tenant.admin)
    changed = await admin.patch("/api/tenant", {"name": " Acme Ltd ", "time_zone": "America/Sao_Paulo"})
    assert (changed.data["name"], changed.data["time_zone"], changed.data["slug"]) == (
        "Acme Ltd",
        "America/Sao_Paulo",
        tenant.workspace,
    )
    me = (await admin.get("/api/me")).data
    assert (me["tenant_name"], me["time_zone"]) == ("Acme Ltd", "America/Sao_Paulo")
    bad = await admin.patch("/api/tenant", {"time_zone": "Mars/Olympus"})
    assert (bad.status, _fields(bad.body)) == (400, {("body.time_zone", "value_error")})
    assert (await admin.patch("/api/tenant", {"name": ""})).status == 400
    assert (await admin.patch("/api/tenant", {"slug": "other"})).status == 400
    entries = (await admin.get("/api/audit-log?action=tenant.changed")).data
    assert entries[0]["details"]["changes"]["time_zone"] == {"from": "UTC", "to": "America/Sao_Paulo"}
    other_admin = await browsers.signed_in(other_tenant.admin)
    assert (await other_admin.get("/api/tenant")).data["time_zone"] == "UTC"


async def test_the_audit_log_is_filtered_by_time(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    assert (await admin.patch("/api/tenant/settings", {"prefer_last_agent": True})).status == 200
    now = datetime.now(UTC)

    def at(moment: datetime) -> str:
        return quote(moment.isoformat())

    action = "action=tenant.settings_changed"
    assert len((await admin.get(f"/api/audit-log?{action}&since={at(now - timedelta(hours=1))}")).data) == 1
    assert (await admin.get(f"/api/audit-log?{action}&since={at(now + timedelta(hours=1))}")).data == []
    assert (await admin.get(f"/api/audit-log?{action}&until={at(now - timedelta(hours=1))}")).data == []
    backwards = await admin.get(f"/api/audit-log?since={at(now)}&until={at(now - timedelta(hours=1))}")
    assert backwards.status == 400
    assert (await admin.get("/api/audit-log?since=2026-01-01T00:00:00")).status == 400  # no offset: ambiguous


async def test_the_queues_of_one_member(browsers: Browsers, tenant: TenantPeople) -> None:
    admin = await browsers.signed_in(tenant.admin)
    sales = (await admin.post("/api/queues", {"name": f"Sales {uuid.uuid4().hex[:4]}"})).data
    assert (await admin.put(f"/api/queues/{sales['id']}/members/{tenant.other_agent.id}", {})).status == 200
    mine = await admin.get(f"/api/queues?member_id={tenant.agent.id}")
    assert [q["id"] for q in mine.data] == [str(tenant.queue_id)]
    theirs = await admin.get(f"/api/queues?member_id={tenant.other_agent.id}")
    assert ([q["id"] for q in theirs.data], theirs.body["pagination"]["total"]) == ([sales["id"]], 1)
    assert (await admin.get(f"/api/queues?member_id={tenant.supervisor.id}")).data == []
    # An agent's own sight still bounds what they see of another's queues.
    agent = await browsers.signed_in(tenant.agent)
    assert (await agent.get(f"/api/queues?member_id={tenant.other_agent.id}")).data == []


async def test_only_what_the_console_shows_is_announced(browsers: Browsers, db: Database, tenant: TenantPeople) -> None:
    """`tenant.updated` redraws every open console: a setting the console does not show sends none."""
    admin = await browsers.signed_in(tenant.admin)

    async def announced_since(seq: int) -> list[dict[str, object]]:
        async with tenant_tx(db, tenant.id) as conn:
            rows = await conn.fetch(
                "select payload from events where seq > $1 and type = 'tenant.updated' order by seq", seq
            )
        return [dict(row["payload"]) for row in rows]

    async with tenant_tx(db, tenant.id) as conn:
        start = await conn.fetchval("select coalesce(max(seq), 0) from events")
    settings = (await admin.get("/api/tenant/settings")).data
    assert (
        await admin.patch("/api/tenant/settings", {"prefer_last_agent": not settings["prefer_last_agent"]})
    ).status == 200
    assert await announced_since(start) == []
    taking = not settings["agents_can_take_waiting"]
    assert (await admin.patch("/api/tenant/settings", {"agents_can_take_waiting": taking})).status == 200
    assert (await admin.patch("/api/tenant", {"time_zone": "America/Sao_Paulo"})).status == 200
    [first, second] = await announced_since(start)
    assert first["agents_can_take_waiting"] is taking
    assert second["time_zone"] == "America/Sao_Paulo"
    assert second["agents_can_take_waiting"] is taking

"""The demo tenant (workspace `demo`): an admin, a supervisor, three agents, two queues, a WhatsApp channel, and
the canned responses and labels a team starts with.

Seeding is idempotent: a second `demo` finds the demo tenant by its business number and reuses what is there.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from pydantic import SecretStr

from fiv_console.accounts import tenant_settings, tenants, users
from fiv_console.accounts.passwords import hash_password_async
from fiv_console.constants import DEMO_DISPLAY_NUMBER, DEMO_PHONE_NUMBER_ID
from fiv_console.conversations import labels
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.messages import canned_responses
from fiv_console.routing import channels, queues
from fiv_console.simulation.envelopes import DEFAULT_WABA_ID

DEMO_TENANT_NAME = "Demo Company"
DEMO_WORKSPACE = "demo"


@dataclass(frozen=True, slots=True)
class DemoLogin:
    role: users.Role
    name: str
    email: str
    password: str
    queues: tuple[str, ...] = ()


# Demo-only credentials, printed by `fiv-console demo`; never used outside the demo tenant.
DEMO_LOGINS: tuple[DemoLogin, ...] = (
    DemoLogin("admin", "Alex Admin", "admin@demo.fiv.example", "demo-admin-pass"),
    DemoLogin("supervisor", "Sam Supervisor", "supervisor@demo.fiv.example", "demo-supervisor-pass"),
    DemoLogin("agent", "Ana Agent", "ana@demo.fiv.example", "demo-agent-pass", ("Sales", "Support")),
    DemoLogin("agent", "Bruno Agent", "bruno@demo.fiv.example", "demo-agent-pass", ("Sales",)),
    DemoLogin("agent", "Carla Agent", "carla@demo.fiv.example", "demo-agent-pass", ("Support",)),
)
DEMO_QUEUES = (
    queues.QueueCreate(name="Sales", priority=10, sla_seconds=120),
    queues.QueueCreate(name="Support", priority=0, sla_seconds=300),
)

DEMO_CANNED_RESPONSES = (
    canned_responses.CannedResponseCreate(
        shortcut="hello", title="Greeting", body="Hi {{contact.name|there}}, this is {{agent.name}}. How can I help?"
    ),
    canned_responses.CannedResponseCreate(
        shortcut="thanks",
        title="Thanks and goodbye",
        body="Thanks for writing, {{contact.name|friend}}! Have a great day.",
    ),
    canned_responses.CannedResponseCreate(
        shortcut="order", title="Ask for the order number", body="Could you send me your order number, please?"
    ),
)
DEMO_LABELS = (
    labels.LabelCreate(name="vip", color="#b26a00"),
    labels.LabelCreate(name="refund", color="#a12a1d"),
    labels.LabelCreate(name="new customer", color="#1f6fb2"),
)


# What a customer of the demo hears while waiting, and what happens to a conversation an agent sits on:
# applied as an admin's change on the settings page is (`PATCH /api/tenant/settings`), through its model.
DEMO_SETTINGS = tenant_settings.TenantSettingsChange.model_validate(
    {
        "queue_position_reply": "Thanks for writing! You are number {position} in line; estimated wait: {wait}.",
        "unanswered_reroute_seconds": 300,
    }
)


@dataclass(frozen=True, slots=True)
class DemoTenant:
    tenant_id: UUID
    workspace: str
    created: bool


# The demo's business number marks the demo tenant, whatever its workspace became (a demo seeded before
# workspaces existed got its slug from its name).
_DEMO_TENANT_SQL = "select tenant_id from channel_for_phone_number($1)"
# A demo seeded before channels knew their account gets the simulator's, so its templates show.
_DEMO_WABA_SQL = "update channels set waba_id = $2 where phone_number_id = $1 and waba_id is null"


async def seed_demo(db: Database) -> DemoTenant:
    async with db.connection() as conn:
        existing: UUID | None = await conn.fetchval(_DEMO_TENANT_SQL, DEMO_PHONE_NUMBER_ID)
    if existing is not None:
        async with tenant_tx(db, existing) as conn:
            found = await tenants.get_tenant(conn, tenant_id=existing)
            await conn.execute(_DEMO_WABA_SQL, DEMO_PHONE_NUMBER_ID, DEFAULT_WABA_ID)
        assert found is not None, "the demo number's tenant exists"
        return DemoTenant(tenant_id=existing, workspace=found.slug, created=False)

    hashes = {login.password: await hash_password_async(login.password) for login in DEMO_LOGINS}
    tenant = await tenants.create_tenant(db, tenants.TenantCreate(name=DEMO_TENANT_NAME, slug=DEMO_WORKSPACE))
    async with tenant_tx(db, tenant.id) as conn:
        await tenant_settings.change_settings(conn, tenant_id=tenant.id, change=DEMO_SETTINGS)
        queue_ids = {}
        for queue in DEMO_QUEUES:
            queue_ids[queue.name] = (await queues.create_queue(conn, tenant_id=tenant.id, data=queue)).id
        for login in DEMO_LOGINS:
            user = await users.create_user(
                conn,
                tenant_id=tenant.id,
                data=users.UserCreate(
                    email=login.email, name=login.name, role=login.role, password=SecretStr(login.password)
                ),
                password_hash=hashes[login.password],
            )
            for queue_name in login.queues:
                await queues.add_member(conn, tenant_id=tenant.id, queue_id=queue_ids[queue_name], user_id=user.id)
        await channels.create_channel(
            conn,
            tenant_id=tenant.id,
            data=channels.ChannelCreate(
                phone_number_id=DEMO_PHONE_NUMBER_ID,
                display_number=DEMO_DISPLAY_NUMBER,
                default_queue_id=queue_ids["Support"],
                # The demo's Graph API is the simulator, which takes any token.
                access_token=SecretStr("demo-access-token"),
                # The simulator's business account, whose templates it serves.
                waba_id=DEFAULT_WABA_ID,
            ),
        )
        for canned in DEMO_CANNED_RESPONSES:
            await canned_responses.create_canned_response(conn, tenant_id=tenant.id, data=canned, created_by=None)
        for label in DEMO_LABELS:
            await labels.create_label(conn, tenant_id=tenant.id, data=label)
    return DemoTenant(tenant_id=tenant.id, workspace=tenant.slug, created=True)

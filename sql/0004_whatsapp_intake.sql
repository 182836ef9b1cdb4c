-- WhatsApp intake and sending: what a message carries beyond its text, delivery receipts, the per-tenant
-- event counter, and the operator's dead-letter box for webhooks that belong to no tenant.

-- What a message carries beyond text and media: a location, shared contact cards, the button or list row
-- chosen, a reaction, an order, a system notice, a template sent, the ad it came from, forwarding flags.
-- Shaped by kind (fiv_console/messages.py); kinds we do not know yet keep only `raw`.
alter table messages
    add column details jsonb check (details is null or jsonb_typeof(details) = 'object'),
    -- When WhatsApp says the customer sent it (Meta's timestamp), which may precede its arrival here.
    add column sent_at timestamptz,
    -- Inbound: when it was marked read towards WhatsApp (the blue ticks), so it is marked once.
    add column read_at timestamptz,
    -- Outbound: how many times the Graph API was asked to send it; the idempotency key is the row's id.
    add column send_attempts integer not null default 0 check (send_attempts >= 0);

-- The inbound messages an agent has not read yet: what opening a conversation marks read.
create index messages_unread_inbound_idx on messages (tenant_id, conversation_id)
    where direction = 'inbound' and read_at is null;

-- Every delivery receipt WhatsApp sent, once per (message, status). Statuses arrive out of order and
-- sometimes before the send's answer names the wamid; the message's own status moves only forward, and a
-- receipt for a message not known (yet) waits here to be applied when the wamid is stored.
create table message_statuses (
    tenant_id      uuid not null references tenants (id) on delete cascade,
    channel_id     uuid not null,
    wa_message_id  text not null check (length(wa_message_id) between 1 and 256),
    status         text not null check (length(status) between 1 and 64),
    occurred_at    timestamptz not null,
    errors         jsonb,
    raw            jsonb,
    received_at    timestamptz not null default now(),
    primary key (channel_id, wa_message_id, status),
    foreign key (tenant_id, channel_id) references channels (tenant_id, id)
);
create index message_statuses_tenant_idx on message_statuses (tenant_id, received_at);

-- The last event seq handed out per tenant. Taking it is the last statement of a transaction, so the row
-- lock orders commits: seq order is commit order, and a reader of "events after N" never misses one that
-- commits later with a smaller seq.
create table event_counters (
    tenant_id  uuid primary key references tenants (id) on delete cascade,
    last_seq   bigint not null default 0 check (last_seq >= 0)
);

alter table message_statuses enable row level security;
alter table message_statuses force row level security;
create policy tenant_isolation on message_statuses
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

alter table event_counters enable row level security;
alter table event_counters force row level security;
create policy tenant_isolation on event_counters
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

grant select, insert on message_statuses to fiv_app;
grant select, insert, update on event_counters to fiv_app;

-- Signed webhooks that could not be attached to a tenant: a body that is not a webhook, a business number
-- no tenant has, or an item without the ids needed to store it. Not a tenant table: its rows belong to no
-- tenant, and no tenant may read them. The server may only add rows; operators read them as the owner
-- (`fiv-console dead-letters`).
create table webhook_dead_letters (
    id               bigint generated always as identity primary key,
    received_at      timestamptz not null default now(),
    reason           text not null check (reason in ('unparseable', 'unroutable', 'unstorable')),
    phone_number_id  text check (length(phone_number_id) <= 64),
    detail           text check (length(detail) <= 2000),
    body             bytea not null
);
create index webhook_dead_letters_received_idx on webhook_dead_letters (received_at desc);

grant insert on webhook_dead_letters to fiv_app;

-- Core schema, first cut: tenants, people, queues, WhatsApp channels, contacts, conversations,
-- messages, notes, the event log and the audit log.
--
-- Tenancy rules (docs/architecture.md):
-- * every tenant table has tenant_id; its row-level security is enabled and FORCED (0002);
-- * keys between tenant tables carry tenant_id (composite foreign keys), because key checks bypass RLS
--   and only a composite key stops a row from pointing at another tenant's row;
-- * the server connects as role fiv_app, which `fiv-console migrate` creates and which owns nothing.

create table tenants (
    id          uuid primary key default gen_random_uuid(),
    name        text not null check (length(btrim(name)) between 1 and 200),
    time_zone   text not null default 'UTC' check (length(time_zone) between 1 and 64),
    settings    jsonb not null default '{}' check (jsonb_typeof(settings) = 'object'),
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

create table users (
    id               uuid not null default gen_random_uuid() primary key,
    tenant_id        uuid not null references tenants (id) on delete cascade,
    -- Emails are unique across tenants: login asks for an email and a password only.
    email            text not null check (email = lower(email) and length(email) between 3 and 254),
    name             text not null check (length(btrim(name)) between 1 and 200),
    role             text not null check (role in ('admin', 'supervisor', 'agent')),
    password_hash    text not null,
    max_concurrent   integer not null default 3 check (max_concurrent between 1 and 100),
    disabled         boolean not null default false,
    -- Bumped by logout-everywhere, password change, disable and role change: ends every session.
    session_version  integer not null default 1,
    last_assigned_at timestamptz,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    unique (tenant_id, id),
    unique (email)
);
create index users_tenant_role_idx on users (tenant_id, role);

-- Tenant API tokens for integrations: not tied to a person, carrying a role; only a hash is stored.
create table api_tokens (
    id            uuid not null default gen_random_uuid() primary key,
    tenant_id     uuid not null references tenants (id) on delete cascade,
    name          text not null check (length(btrim(name)) between 1 and 100),
    role          text not null check (role in ('admin', 'supervisor', 'agent')),
    -- SHA-256 of the secret: tokens are long random strings, so a slow hash adds nothing.
    token_hash    bytea not null check (length(token_hash) = 32),
    created_by    uuid,
    created_at    timestamptz not null default now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    unique (tenant_id, id),
    unique (token_hash),
    foreign key (tenant_id, created_by) references users (tenant_id, id)
);
create index api_tokens_tenant_idx on api_tokens (tenant_id, created_at desc);

create table queues (
    id           uuid not null default gen_random_uuid() primary key,
    tenant_id    uuid not null references tenants (id) on delete cascade,
    name         text not null check (length(btrim(name)) between 1 and 100),
    priority     integer not null default 0 check (priority between -1000 and 1000),
    sla_seconds  integer not null default 300 check (sla_seconds between 1 and 604800),
    active       boolean not null default true,
    -- Names are unique ignoring case. A stored key (not an index on lower(name)) because under row-level
    -- security PostgreSQL will not use an index on a function that is not LEAKPROOF, such as lower().
    name_key     text generated always as (lower(name)) stored,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now(),
    unique (tenant_id, id),
    unique (tenant_id, name_key)
);
create index queues_tenant_active_idx on queues (tenant_id, active);

create table queue_members (
    tenant_id               uuid not null references tenants (id) on delete cascade,
    queue_id                uuid not null,
    user_id                 uuid not null,
    -- Per-queue capacity; null means the agent's own max_concurrent.
    max_concurrent_override integer check (max_concurrent_override between 1 and 100),
    created_at              timestamptz not null default now(),
    primary key (tenant_id, queue_id, user_id),
    foreign key (tenant_id, queue_id) references queues (tenant_id, id) on delete cascade,
    foreign key (tenant_id, user_id) references users (tenant_id, id) on delete cascade
);
create index queue_members_user_idx on queue_members (tenant_id, user_id);

create table channels (
    id                uuid not null default gen_random_uuid() primary key,
    tenant_id         uuid not null references tenants (id) on delete cascade,
    -- Meta's id of the business number; webhooks name it, and it decides the tenant.
    phone_number_id   text not null check (phone_number_id ~ '^[0-9]{1,32}$'),
    display_number    text not null check (length(display_number) between 1 and 32),
    default_queue_id  uuid not null,
    -- Write-only through the API; never returned.
    access_token      text,
    active            boolean not null default true,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    unique (tenant_id, id),
    unique (phone_number_id),
    foreign key (tenant_id, default_queue_id) references queues (tenant_id, id)
);

create table contacts (
    id            uuid not null default gen_random_uuid() primary key,
    tenant_id     uuid not null references tenants (id) on delete cascade,
    wa_id         text not null check (length(wa_id) between 1 and 32),
    profile_name  text check (length(profile_name) <= 500),
    name          text check (length(name) <= 200),
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    unique (tenant_id, id),
    unique (tenant_id, wa_id)
);

create table conversations (
    id                 uuid not null default gen_random_uuid() primary key,
    tenant_id          uuid not null references tenants (id) on delete cascade,
    channel_id         uuid not null,
    contact_id         uuid not null,
    queue_id           uuid not null,
    agent_id           uuid,
    status             text not null default 'waiting' check (status in ('waiting', 'assigned', 'closed')),
    priority           integer not null default 0 check (priority between -1000 and 1000),
    created_at         timestamptz not null default now(),
    -- When it (last) entered its queue's waiting line; a transfer keeps it, so FIFO survives moves.
    enqueued_at        timestamptz not null default now(),
    assigned_at        timestamptz,
    first_response_at  timestamptz,
    closed_at          timestamptz,
    close_reason       text check (length(close_reason) <= 500),
    -- The customer's last message: WhatsApp's 24-hour free-text window runs from it.
    last_inbound_at    timestamptz,
    last_message_at    timestamptz,
    updated_at         timestamptz not null default now(),
    unique (tenant_id, id),
    foreign key (tenant_id, channel_id) references channels (tenant_id, id),
    foreign key (tenant_id, contact_id) references contacts (tenant_id, id),
    foreign key (tenant_id, queue_id) references queues (tenant_id, id),
    foreign key (tenant_id, agent_id) references users (tenant_id, id),
    check (status <> 'assigned' or (agent_id is not null and assigned_at is not null)),
    check (status <> 'waiting' or agent_id is null),
    check ((status = 'closed') = (closed_at is not null))
);
-- One open conversation per contact and number: a new message joins it instead of opening another.
create unique index conversations_one_open_key
    on conversations (tenant_id, channel_id, contact_id) where status <> 'closed';
create index conversations_tenant_status_idx on conversations (tenant_id, status);
-- The assignment loop's waiting line: highest priority first, then the longest waiting.
create index conversations_waiting_idx
    on conversations (tenant_id, queue_id, priority desc, enqueued_at) where status = 'waiting';
create index conversations_agent_open_idx
    on conversations (tenant_id, agent_id) where status = 'assigned';
create index conversations_contact_idx on conversations (tenant_id, contact_id, created_at desc);
create index conversations_tenant_activity_idx on conversations (tenant_id, last_message_at desc);

create table messages (
    id               uuid not null default gen_random_uuid() primary key,
    tenant_id        uuid not null references tenants (id) on delete cascade,
    conversation_id  uuid not null,
    channel_id       uuid not null,
    direction        text not null check (direction in ('inbound', 'outbound')),
    -- WhatsApp's message type (text, image, ..., unknown kinds kept as sent); free text, not an enum,
    -- so a new kind from Meta is stored, never refused.
    kind             text not null check (length(kind) between 1 and 64),
    text             text,
    media            jsonb check (media is null or jsonb_typeof(media) = 'object'),
    raw              jsonb,
    wa_message_id    text check (length(wa_message_id) <= 256),
    reply_to_wa_message_id text check (length(reply_to_wa_message_id) <= 256),
    status           text not null
        check (status in ('received', 'queued', 'sent', 'delivered', 'read', 'failed')),
    error            jsonb,
    author_id        uuid,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    unique (tenant_id, id),
    foreign key (tenant_id, conversation_id) references conversations (tenant_id, id) on delete cascade,
    foreign key (tenant_id, channel_id) references channels (tenant_id, id),
    foreign key (tenant_id, author_id) references users (tenant_id, id),
    check (direction = 'outbound' or author_id is null)
);
-- Webhook intake inserts with ON CONFLICT on this key: a redelivered wamid is one row.
create unique index messages_channel_wamid_key on messages (channel_id, wa_message_id);
create index messages_conversation_created_idx on messages (tenant_id, conversation_id, created_at, id);

create table notes (
    id               uuid not null default gen_random_uuid() primary key,
    tenant_id        uuid not null references tenants (id) on delete cascade,
    conversation_id  uuid not null,
    author_id        uuid not null,
    body             text not null check (length(body) between 1 and 10000),
    created_at       timestamptz not null default now(),
    unique (tenant_id, id),
    foreign key (tenant_id, conversation_id) references conversations (tenant_id, id) on delete cascade,
    foreign key (tenant_id, author_id) references users (tenant_id, id)
);
create index notes_conversation_created_idx on notes (tenant_id, conversation_id, created_at);

-- The replay log behind the WebSocket: every change a person must see live, in per-tenant seq order.
create table events (
    tenant_id        uuid not null references tenants (id) on delete cascade,
    seq              bigint not null check (seq > 0),
    type             text not null check (length(type) between 1 and 64),
    conversation_id  uuid,
    -- Who may receive it: all of the tenant's supervisors and admins, a queue's agents, or one agent.
    audience         text not null check (audience in ('tenant', 'supervisors', 'queue', 'agent')),
    audience_id      uuid,
    payload          jsonb not null default '{}',
    created_at       timestamptz not null default now(),
    primary key (tenant_id, seq),
    check ((audience in ('queue', 'agent')) = (audience_id is not null))
);
create index events_created_idx on events (tenant_id, created_at);

create table audit_log (
    id             bigint generated always as identity primary key,
    tenant_id      uuid not null references tenants (id) on delete cascade,
    actor_kind     text not null check (actor_kind in ('user', 'token', 'system', 'anonymous')),
    actor_id       uuid,
    action         text not null check (length(action) between 1 and 100),
    target_type    text check (length(target_type) <= 64),
    target_id      text check (length(target_id) <= 256),
    details        jsonb not null default '{}',
    client_address text check (length(client_address) <= 64),
    request_id     text check (length(request_id) <= 128),
    created_at     timestamptz not null default now()
);
create index audit_log_tenant_created_idx on audit_log (tenant_id, created_at desc);

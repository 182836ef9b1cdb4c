-- What the REST API of the accounts issue adds: agents' chosen status, canned responses and labels.

-- The agent's own choice (online / away / offline); "connected" (has a live socket) is tracked apart.
alter table users
    add column status text not null default 'offline' check (status in ('online', 'away', 'offline')),
    add column status_changed_at timestamptz;

create table canned_responses (
    id          uuid not null default gen_random_uuid() primary key,
    tenant_id   uuid not null references tenants (id) on delete cascade,
    -- Typed after a slash in the composer: `/greeting`.
    shortcut    text not null check (shortcut ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
    title       text not null check (length(btrim(title)) between 1 and 100),
    body        text not null check (length(body) between 1 and 4096),
    created_by  uuid,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    unique (tenant_id, id),
    unique (tenant_id, shortcut),
    foreign key (tenant_id, created_by) references users (tenant_id, id)
);

create table labels (
    id          uuid not null default gen_random_uuid() primary key,
    tenant_id   uuid not null references tenants (id) on delete cascade,
    name        text not null check (length(btrim(name)) between 1 and 50),
    color       text not null default '#607d8b' check (color ~ '^#[0-9a-f]{6}$'),
    name_key    text generated always as (lower(name)) stored,
    created_at  timestamptz not null default now(),
    unique (tenant_id, id),
    unique (tenant_id, name_key)
);

create table conversation_labels (
    tenant_id        uuid not null references tenants (id) on delete cascade,
    conversation_id  uuid not null,
    label_id         uuid not null,
    created_at       timestamptz not null default now(),
    primary key (tenant_id, conversation_id, label_id),
    foreign key (tenant_id, conversation_id) references conversations (tenant_id, id) on delete cascade,
    foreign key (tenant_id, label_id) references labels (tenant_id, id) on delete cascade
);
create index conversation_labels_label_idx on conversation_labels (tenant_id, label_id);

alter table canned_responses enable row level security;
alter table canned_responses force row level security;
create policy tenant_isolation on canned_responses
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

alter table labels enable row level security;
alter table labels force row level security;
create policy tenant_isolation on labels
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

alter table conversation_labels enable row level security;
alter table conversation_labels force row level security;
create policy tenant_isolation on conversation_labels
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

grant select, insert, update, delete on canned_responses, labels, conversation_labels to fiv_app;

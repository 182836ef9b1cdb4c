-- WhatsApp as Meta sends it (issue #16). What customers do to messages already sent: edit them, delete them
-- for everyone (revoke), and react to them; none of these is a new message in the history: each changes the
-- message it names. And the errors Meta reports on a whole change.

-- When the customer last edited the message, and when they deleted it for everyone (its text and media are
-- then cleared from the row; the revision below keeps them for the audit).
alter table messages
    add column edited_at timestamptz,
    add column revoked_at timestamptz;

-- Every edit and revoke, once per its own wamid (Meta redelivers): what the message said before and what
-- it says since. One that names a message not stored (yet) is kept, with no message, and changes nothing.
create table message_revisions (
    tenant_id             uuid not null references tenants (id) on delete cascade,
    channel_id            uuid not null,
    wa_message_id         text not null check (length(wa_message_id) between 1 and 256),
    target_wa_message_id  text not null check (length(target_wa_message_id) between 1 and 256),
    message_id            uuid,
    kind                  text not null check (kind in ('edit', 'revoke')),
    previous_text         text,
    previous_media        jsonb,
    text                  text,
    media                 jsonb,
    raw                   jsonb,
    occurred_at           timestamptz not null,
    received_at           timestamptz not null default now(),
    primary key (channel_id, wa_message_id),
    foreign key (tenant_id, channel_id) references channels (tenant_id, id),
    foreign key (tenant_id, message_id) references messages (tenant_id, id) on delete cascade
);
create index message_revisions_message_idx on message_revisions (tenant_id, message_id, occurred_at)
    where message_id is not null;

-- Each person's reaction to a message, by the wamid it names (a reaction may come before the message is
-- stored): a newer one of the same person replaces it, an empty one removes it (the row stays, with no
-- emoji, so an older reaction delivered late cannot bring it back). `reactor` is the customer's number or
-- business-scoped id, or 'business' for the agents' own.
create table message_reactions (
    tenant_id             uuid not null references tenants (id) on delete cascade,
    channel_id            uuid not null,
    target_wa_message_id  text not null check (length(target_wa_message_id) between 1 and 256),
    reactor               text not null check (length(reactor) between 1 and 256),
    emoji                 text check (length(emoji) between 1 and 64),
    wa_message_id         text check (length(wa_message_id) <= 256),
    reacted_at            timestamptz not null,
    primary key (channel_id, target_wa_message_id, reactor),
    foreign key (tenant_id, channel_id) references channels (tenant_id, id)
);

alter table message_revisions enable row level security;
alter table message_revisions force row level security;
create policy tenant_isolation on message_revisions
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);
alter table message_reactions enable row level security;
alter table message_reactions force row level security;
create policy tenant_isolation on message_reactions
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);
grant select, insert, update on message_revisions, message_reactions to fiv_app;
-- A message deleted for everyone takes its words out of search.
grant delete on conversation_terms to fiv_app;

-- Errors Meta reports on a whole change rather than on a message (a value-level `errors[]`: a webhook it
-- could not render, a rate limit hit, a business that declined to share its chat history), kept with the
-- business number they concern, once per delivery of the body that carried them (Meta redelivers bodies
-- unchanged, and these have no id of their own).
create table channel_errors (
    tenant_id    uuid not null references tenants (id) on delete cascade,
    channel_id   uuid not null,
    body_sha256  bytea not null,
    position     integer not null check (position >= 0),
    code         bigint,
    title        text,
    message      text,
    details      text,
    raw          jsonb,
    received_at  timestamptz not null default now(),
    primary key (channel_id, body_sha256, position),
    foreign key (tenant_id, channel_id) references channels (tenant_id, id)
);
create index channel_errors_received_idx on channel_errors (tenant_id, channel_id, received_at);

alter table channel_errors enable row level security;
alter table channel_errors force row level security;
create policy tenant_isolation on channel_errors
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);
grant select, insert on channel_errors to fiv_app;

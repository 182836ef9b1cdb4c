-- Row-level security on every tenant table, the server role's privileges, and the only lookups that
-- may cross tenants.
--
-- * RLS is enabled and FORCED (so the owner is held to it too; superusers still bypass, which is why the
--   server never connects as one: `fiv-console serve` refuses a role that could bypass these policies).
-- * One policy per table, USING and WITH CHECK alike. nullif(...) matters: a transaction-local setting
--   that was reverted reads back as '' rather than NULL, and ''::uuid would raise; NULL matches nothing.

alter table tenants enable row level security;
alter table tenants force row level security;
create policy tenant_isolation on tenants
    using (id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (id = nullif(current_setting('app.current_tenant', true), '')::uuid);

alter table users enable row level security;
alter table users force row level security;
create policy tenant_isolation on users
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

alter table api_tokens enable row level security;
alter table api_tokens force row level security;
create policy tenant_isolation on api_tokens
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

alter table queues enable row level security;
alter table queues force row level security;
create policy tenant_isolation on queues
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

alter table queue_members enable row level security;
alter table queue_members force row level security;
create policy tenant_isolation on queue_members
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

alter table channels enable row level security;
alter table channels force row level security;
create policy tenant_isolation on channels
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

alter table contacts enable row level security;
alter table contacts force row level security;
create policy tenant_isolation on contacts
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

alter table conversations enable row level security;
alter table conversations force row level security;
create policy tenant_isolation on conversations
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

alter table messages enable row level security;
alter table messages force row level security;
create policy tenant_isolation on messages
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

alter table notes enable row level security;
alter table notes force row level security;
create policy tenant_isolation on notes
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

alter table events enable row level security;
alter table events force row level security;
create policy tenant_isolation on events
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

alter table audit_log enable row level security;
alter table audit_log force row level security;
create policy tenant_isolation on audit_log
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

-- What the server role may do. No DELETE where history must stay (users are disabled, audit rows are
-- append-only); events are deleted only by retention pruning.
grant select, insert, update on tenants, users, api_tokens, queues, channels, contacts, conversations,
    messages to fiv_app;
grant select, insert, update, delete on queue_members to fiv_app;
grant select, insert on notes, audit_log to fiv_app;
grant select, insert, delete on events to fiv_app;

-- The reviewed cross-tenant lookups, for the moments before the tenant is known. Each returns only ids.
-- They run as the owner (SECURITY DEFINER). A superuser owner bypasses RLS; for an owner that is not a
-- superuser, FORCE would hold it to the tenant policy too, so the owner (and only it: the server role is
-- neither the owner nor a member of it, which `serve` checks) gets a read-only policy on these tables.
create policy owner_lookup on channels for select to current_user using (true);
create policy owner_lookup on users for select to current_user using (true);
create policy owner_lookup on api_tokens for select to current_user using (true);

-- Webhook intake: Meta names the business number; the number decides the tenant.
create function channel_for_phone_number(p_phone_number_id text)
    returns table (tenant_id uuid, channel_id uuid, active boolean)
    language sql stable security definer
    set search_path = pg_catalog, pg_temp
as $$
    select c.tenant_id, c.id, c.active from public.channels c where c.phone_number_id = p_phone_number_id
$$;

-- Login: an email (unique across tenants) leads to its tenant and user; the hash is read afterwards
-- inside that tenant's transaction.
create function user_for_login(p_email text)
    returns table (tenant_id uuid, user_id uuid)
    language sql stable security definer
    set search_path = pg_catalog, pg_temp
as $$
    select u.tenant_id, u.id from public.users u where u.email = lower(p_email)
$$;

-- API calls: `Authorization: Bearer <secret>` leads, by the secret's SHA-256, to a live token's tenant.
create function api_token_for_hash(p_token_hash bytea)
    returns table (tenant_id uuid, token_id uuid)
    language sql stable security definer
    set search_path = pg_catalog, pg_temp
as $$
    select t.tenant_id, t.id from public.api_tokens t where t.token_hash = p_token_hash and t.revoked_at is null
$$;

revoke all on function channel_for_phone_number(text), user_for_login(text), api_token_for_hash(bytea)
    from public;
grant execute on function channel_for_phone_number(text), user_for_login(text), api_token_for_hash(bytea)
    to fiv_app;

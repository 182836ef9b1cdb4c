-- What the realtime issue adds: event audiences that name several queues and people, agents' live
-- connections (a lease per instance), their presence history, and the one cross-tenant lookup that
-- background work (event retention, later the assignment sweep) needs: the list of tenant ids.

-- An event's audience: everyone in the tenant, its supervisors and admins only, or the members of some
-- queues plus some people (supervisors and admins always). A conversation assigned from a queue concerns
-- the queue (it leaves their waiting line), the new agent and the previous one; one id could not say that.
alter table events
    add column audience_queue_ids uuid[] not null default '{}',
    add column audience_user_ids  uuid[] not null default '{}';
update events set audience_queue_ids = array[audience_id] where audience = 'queue';
update events set audience_user_ids = array[audience_id] where audience = 'agent';
alter table events drop constraint events_check;
alter table events drop constraint events_audience_check;
update events set audience = 'members' where audience in ('queue', 'agent');
alter table events drop column audience_id;
alter table events add constraint events_audience_check
    check (audience in ('tenant', 'supervisors', 'members'));

-- "Connected": an agent has a live socket on some instance. Each instance keeps one row per agent it
-- serves and refreshes `seen_at` while the agent has sockets there; a row not refreshed within the grace
-- period (the agent closed their last socket, or the instance died) no longer counts.
create table agent_connections (
    tenant_id    uuid not null references tenants (id) on delete cascade,
    user_id      uuid not null,
    instance_id  uuid not null,
    sockets      integer not null default 0 check (sockets >= 0),
    seen_at      timestamptz not null default now(),
    primary key (tenant_id, user_id, instance_id),
    foreign key (tenant_id, user_id) references users (tenant_id, id) on delete cascade
);

-- What the console last told people about an agent's connection (the live state is computed from
-- agent_connections); flipping it is what turns a lapse into one `agent.presence` event.
alter table users
    add column connected boolean not null default false,
    add column connected_changed_at timestamptz;

-- Every presence change (chosen status or connection), for the activity report.
create table agent_presence_log (
    id          bigint generated always as identity primary key,
    tenant_id   uuid not null references tenants (id) on delete cascade,
    user_id     uuid not null,
    status      text not null check (status in ('online', 'away', 'offline')),
    connected   boolean not null,
    changed_at  timestamptz not null default now(),
    foreign key (tenant_id, user_id) references users (tenant_id, id) on delete cascade
);
create index agent_presence_log_user_idx on agent_presence_log (tenant_id, user_id, changed_at);

alter table agent_connections enable row level security;
alter table agent_connections force row level security;
create policy tenant_isolation on agent_connections
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

alter table agent_presence_log enable row level security;
alter table agent_presence_log force row level security;
create policy tenant_isolation on agent_presence_log
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);

grant select, insert, update, delete on agent_connections to fiv_app;
grant select, insert on agent_presence_log to fiv_app;

-- Background work that serves every tenant (pruning old events) must know which tenants exist before it
-- can open a transaction in each; it learns their ids and nothing else.
create policy owner_lookup on tenants for select to current_user using (true);

create function tenant_ids()
    returns setof uuid
    language sql stable security definer
    set search_path = pg_catalog, pg_temp
as $$
    select t.id from public.tenants t order by t.id
$$;

revoke all on function tenant_ids() from public;
grant execute on function tenant_ids() to fiv_app;

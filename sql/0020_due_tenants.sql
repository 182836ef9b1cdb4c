-- Background work visits only the tenants that have something due, so that a deployment's idle tenants
-- (most of 10,000 small companies at any hour) cost nothing: the assignment sweep only tenants with an open
-- conversation (every piece of its work, claims, re-routes, SLA marks, inactivity closes, position replies
-- and stranded automatic replies, is about one), the presence sweep only tenants where someone is or was
-- just connected, the hourly retention only tenants with events older than the log keeps and tenants that
-- chose a retention of their own. Each function returns ids only, found by loose index scans: a probe or
-- two per tenant that has work, however many rows each has and however many tenants have none.

create index users_connected_idx on users (tenant_id) where connected;

create function tenants_with_open_conversations()
    returns setof uuid
    language sql stable security definer
    set search_path = pg_catalog, pg_temp
as $$
    with recursive found(id) as (
        (select c.tenant_id from public.conversations c where c.status <> 'closed' order by c.tenant_id limit 1)
        union all
        select (
            select c.tenant_id from public.conversations c
            where c.status <> 'closed' and c.tenant_id > found.id
            order by c.tenant_id limit 1
        )
        from found where found.id is not null
    )
    select id from found where id is not null
$$;

create function tenants_with_presence()
    returns setof uuid
    language sql stable security definer
    set search_path = pg_catalog, pg_temp
as $$
    with recursive leased(id) as (
        (select a.tenant_id from public.agent_connections a order by a.tenant_id limit 1)
        union all
        select (select a.tenant_id from public.agent_connections a where a.tenant_id > leased.id
                order by a.tenant_id limit 1)
        from leased where leased.id is not null
    ), connected(id) as (
        (select u.tenant_id from public.users u where u.connected order by u.tenant_id limit 1)
        union all
        select (select u.tenant_id from public.users u where u.connected and u.tenant_id > connected.id
                order by u.tenant_id limit 1)
        from connected where connected.id is not null
    )
    select id from leased where id is not null
    union
    select id from connected where id is not null
$$;

create function tenants_with_events_before(p_before timestamptz)
    returns setof uuid
    language sql stable security definer
    set search_path = pg_catalog, pg_temp
as $$
    with recursive logged(id) as (
        (select e.tenant_id from public.events e order by e.tenant_id limit 1)
        union all
        select (select e.tenant_id from public.events e where e.tenant_id > logged.id order by e.tenant_id limit 1)
        from logged where logged.id is not null
    )
    select l.id from logged l
    where l.id is not null
      and (select min(e.created_at) from public.events e where e.tenant_id = l.id) < p_before
$$;

create function tenants_with_retention()
    returns setof uuid
    language sql stable security definer
    set search_path = pg_catalog, pg_temp
as $$
    select t.id from public.tenants t
    where jsonb_typeof(t.settings -> 'retention_days') = 'number'
    order by t.id
$$;

-- Nothing visits every tenant any more.
drop function tenant_ids();

-- As 0002 and 0005 do for the other lookups: an owner that is not a superuser is held to the forced
-- policies too, and would see no row with no tenant set. Read-only, for the owner alone.
create policy owner_lookup on conversations for select to current_user using (true);
create policy owner_lookup on agent_connections for select to current_user using (true);
create policy owner_lookup on events for select to current_user using (true);

revoke all on function tenants_with_open_conversations() from public;
revoke all on function tenants_with_presence() from public;
revoke all on function tenants_with_events_before(timestamptz) from public;
revoke all on function tenants_with_retention() from public;
grant execute on function tenants_with_open_conversations(), tenants_with_presence(),
    tenants_with_events_before(timestamptz), tenants_with_retention() to fiv_app;

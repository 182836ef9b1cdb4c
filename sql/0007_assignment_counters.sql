-- The wallboard's counters (conversations waiting per queue, open per agent), kept by the transactions
-- that change them, so reading them never counts conversations.
--
-- Every change of a conversation's status, queue or agent appends its change as rows of
-- assignment_counter_deltas (a trigger): appending takes no lock another transaction
-- waits for, so intake, claims and moves, in any order and on any instance, never contend or deadlock on
-- a counter. The assignment loop folds the deltas into assignment_counters (one fold at a time per
-- tenant); a reader adds what is not folded yet, a few rows.

create table assignment_counters (
    tenant_id  uuid not null references tenants (id) on delete cascade,
    kind       text not null check (kind in ('queue_waiting', 'agent_open')),
    subject_id uuid not null,
    value      bigint not null,
    primary key (tenant_id, kind, subject_id)
);

create table assignment_counter_deltas (
    tenant_id  uuid not null references tenants (id) on delete cascade,
    kind       text not null check (kind in ('queue_waiting', 'agent_open')),
    subject_id uuid not null,
    delta      integer not null
);
create index assignment_counter_deltas_tenant_idx on assignment_counter_deltas (tenant_id);

alter table assignment_counters enable row level security;
alter table assignment_counters force row level security;
create policy tenant_isolation on assignment_counters
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);
alter table assignment_counter_deltas enable row level security;
alter table assignment_counter_deltas force row level security;
create policy tenant_isolation on assignment_counter_deltas
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);
grant select, insert, update on assignment_counters to fiv_app;
grant select, insert, delete on assignment_counter_deltas to fiv_app;

-- Runs as the caller (never security definer): the rows it appends are held to the caller's tenant.
create function conversation_count_change() returns trigger
    language plpgsql
    set search_path = public, pg_temp
as $$
begin
    if tg_op = 'UPDATE' and old.status in ('waiting', 'assigned') then
        insert into assignment_counter_deltas (tenant_id, kind, subject_id, delta)
        values (old.tenant_id,
                case old.status when 'waiting' then 'queue_waiting' else 'agent_open' end,
                case old.status when 'waiting' then old.queue_id else old.agent_id end,
                -1);
    end if;
    if tg_op in ('UPDATE', 'INSERT') and new.status in ('waiting', 'assigned') then
        insert into assignment_counter_deltas (tenant_id, kind, subject_id, delta)
        values (new.tenant_id,
                case new.status when 'waiting' then 'queue_waiting' else 'agent_open' end,
                case new.status when 'waiting' then new.queue_id else new.agent_id end,
                1);
    end if;
    return null;
end
$$;

-- Conversations are never deleted but with their tenant (a cascade), when its counters go too.
create trigger conversations_counted after insert on conversations
    for each row execute function conversation_count_change();
-- Only a change of what is counted: touching last_message_at (every message) costs nothing.
create trigger conversations_counted_moves after update of status, queue_id, agent_id on conversations
    for each row
    when (old.status is distinct from new.status or old.queue_id is distinct from new.queue_id
          or old.agent_id is distinct from new.agent_id)
    execute function conversation_count_change();

-- What is there already, tenant by tenant: the schema owner is held to row-level security too (it is forced),
-- and sees a tenant's conversations only as that tenant. It may list the tenants (owner_lookup, 0005).
do $$
declare
    t record;
begin
    for t in select id from tenants loop
        perform set_config('app.current_tenant', t.id::text, true);
        insert into assignment_counters (tenant_id, kind, subject_id, value)
        select tenant_id, 'queue_waiting', queue_id, count(*) from conversations
        where tenant_id = t.id and status = 'waiting'
        group by tenant_id, queue_id
        union all
        select tenant_id, 'agent_open', agent_id, count(*) from conversations
        where tenant_id = t.id and status = 'assigned'
        group by tenant_id, agent_id;
    end loop;
    perform set_config('app.current_tenant', '', true);
end
$$;

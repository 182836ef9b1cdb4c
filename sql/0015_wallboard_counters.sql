-- The wallboard's figures that 0007 lacks, kept the same way: by the statements that move conversations,
-- never by counting them when someone looks.
--
-- 1. In progress per queue (conversations assigned now): a third kind of 0007's counters.
-- 2. Today's figures per queue and agent, bucketed by the tenant's own calendar day (its time zone, with
--    daylight saving): waits answered (and within the queue's SLA target), their total wait, waits
--    abandoned, closes, first responses and their total time, and conversations each agent handled. A
--    trigger appends them as delta rows (no lock anyone waits for, as in 0007); the assignment loop folds
--    them with 0007's; a reader adds the unfolded few.
-- 3. Whispers: a note from a supervisor to the conversation's agent, shown to them live.

alter table assignment_counters drop constraint assignment_counters_kind_check;
alter table assignment_counters
    add constraint assignment_counters_kind_check check (kind in ('queue_waiting', 'agent_open', 'queue_open'));
alter table assignment_counter_deltas drop constraint assignment_counter_deltas_kind_check;
alter table assignment_counter_deltas
    add constraint assignment_counter_deltas_kind_check check (kind in ('queue_waiting', 'agent_open', 'queue_open'));

-- As 0007's, with an assigned conversation also counted in progress in its queue.
create or replace function conversation_count_change() returns trigger
    language plpgsql
    set search_path = public, pg_temp
as $$
begin
    if tg_op = 'UPDATE' and old.status = 'waiting' then
        insert into assignment_counter_deltas (tenant_id, kind, subject_id, delta)
        values (old.tenant_id, 'queue_waiting', old.queue_id, -1);
    elsif tg_op = 'UPDATE' and old.status = 'assigned' then
        insert into assignment_counter_deltas (tenant_id, kind, subject_id, delta)
        values (old.tenant_id, 'agent_open', old.agent_id, -1), (old.tenant_id, 'queue_open', old.queue_id, -1);
    end if;
    if new.status = 'waiting' then
        insert into assignment_counter_deltas (tenant_id, kind, subject_id, delta)
        values (new.tenant_id, 'queue_waiting', new.queue_id, 1);
    elsif new.status = 'assigned' then
        insert into assignment_counter_deltas (tenant_id, kind, subject_id, delta)
        values (new.tenant_id, 'agent_open', new.agent_id, 1), (new.tenant_id, 'queue_open', new.queue_id, 1);
    end if;
    return null;
end
$$;

create table wallboard_day_counters (
    tenant_id  uuid not null references tenants (id) on delete cascade,
    day        date not null,
    kind       text not null check (kind in ('answered', 'answered_in_sla', 'wait_ms', 'abandoned', 'closed',
                                             'first_responses', 'first_response_ms', 'handled')),
    subject_id uuid not null,
    value      bigint not null,
    primary key (tenant_id, day, kind, subject_id)
);

create table wallboard_day_counter_deltas (
    tenant_id  uuid not null references tenants (id) on delete cascade,
    day        date not null,
    kind       text not null check (kind in ('answered', 'answered_in_sla', 'wait_ms', 'abandoned', 'closed',
                                             'first_responses', 'first_response_ms', 'handled')),
    subject_id uuid not null,
    delta      bigint not null
);
create index wallboard_day_counter_deltas_tenant_idx on wallboard_day_counter_deltas (tenant_id, day);

alter table wallboard_day_counters enable row level security;
alter table wallboard_day_counters force row level security;
create policy tenant_isolation on wallboard_day_counters
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);
alter table wallboard_day_counter_deltas enable row level security;
alter table wallboard_day_counter_deltas force row level security;
create policy tenant_isolation on wallboard_day_counter_deltas
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);
grant select, insert, update, delete on wallboard_day_counters to fiv_app;
grant select, insert, delete on wallboard_day_counter_deltas to fiv_app;

-- Each figure goes in the day of its end event (the statement's time, in the tenant's zone):
--   a wait ends answered (waiting -> assigned: counted in the queue it waited in, with its length from
--   enqueued_at, and within the SLA target when no longer than the queue's sla_seconds) or abandoned
--   (waiting -> closed, after waiting 5 seconds or more: shorter ones are short abandons, not counted);
--   a close counts in its queue, and as handled for the agent who held it; a first response (the first
--   reply of a person, first_response_at set) counts in the queue it is in, timed from the conversation's
--   arrival (created_at).
-- Runs as the caller (never security definer): the rows it appends are held to the caller's tenant.
create function conversation_day_count() returns trigger
    language plpgsql
    set search_path = public, pg_temp
as $$
declare
    today date;
    waited bigint;
    target integer;
begin
    select (now() at time zone t.time_zone)::date into today from tenants t where t.id = new.tenant_id;
    if old.status = 'waiting' and new.status = 'assigned' then
        waited := greatest(0, floor(extract(epoch from new.assigned_at - old.enqueued_at) * 1000))::bigint;
        select q.sla_seconds into target from queues q where q.tenant_id = old.tenant_id and q.id = old.queue_id;
        insert into wallboard_day_counter_deltas (tenant_id, day, kind, subject_id, delta)
        values (new.tenant_id, today, 'answered', old.queue_id, 1),
               (new.tenant_id, today, 'wait_ms', old.queue_id, waited);
        if waited <= target::bigint * 1000 then
            insert into wallboard_day_counter_deltas (tenant_id, day, kind, subject_id, delta)
            values (new.tenant_id, today, 'answered_in_sla', old.queue_id, 1);
        end if;
    end if;
    if new.status = 'closed' and old.status <> 'closed' then
        insert into wallboard_day_counter_deltas (tenant_id, day, kind, subject_id, delta)
        values (new.tenant_id, today, 'closed', old.queue_id, 1);
        if old.status = 'assigned' then
            insert into wallboard_day_counter_deltas (tenant_id, day, kind, subject_id, delta)
            values (new.tenant_id, today, 'handled', old.agent_id, 1);
        elsif old.status = 'waiting' and new.closed_at - old.enqueued_at >= interval '5 seconds' then
            insert into wallboard_day_counter_deltas (tenant_id, day, kind, subject_id, delta)
            values (new.tenant_id, today, 'abandoned', old.queue_id, 1);
        end if;
    end if;
    if old.first_response_at is null and new.first_response_at is not null then
        insert into wallboard_day_counter_deltas (tenant_id, day, kind, subject_id, delta)
        values (new.tenant_id, today, 'first_responses', new.queue_id, 1),
               (new.tenant_id, today, 'first_response_ms', new.queue_id,
                greatest(0, floor(extract(epoch from new.first_response_at - new.created_at) * 1000))::bigint);
    end if;
    return null;
end
$$;

-- Only an end event: a message's touch (last_message_at) and the other columns cost nothing.
create trigger conversations_counted_today after update of status, first_response_at on conversations
    for each row
    when (old.status is distinct from new.status or old.first_response_at is distinct from new.first_response_at)
    execute function conversation_day_count();

-- In progress per queue for what is assigned already, tenant by tenant (RLS is forced on the owner too).
-- Today's figures start at this migration: what ended before it is the reports' to tell.
do $$
declare
    t record;
begin
    for t in select id from tenants loop
        perform set_config('app.current_tenant', t.id::text, true);
        insert into assignment_counters (tenant_id, kind, subject_id, value)
        select tenant_id, 'queue_open', queue_id, count(*) from conversations
        where tenant_id = t.id and status = 'assigned'
        group by tenant_id, queue_id;
    end loop;
    perform set_config('app.current_tenant', '', true);
end
$$;

-- A whisper is a note the supervisor writes for the conversation's agent: announced to them (and staff),
-- shown apart in their console.
alter table notes add column whisper boolean not null default false;

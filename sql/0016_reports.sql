-- What the reports read: each conversation's life as segments, kept by triggers as it moves.
--
-- A segment is one stretch of a conversation in one queue with at most one agent: it begins when the
-- conversation opens (created or reopened), is transferred by a person (to a queue, to an agent, or put
-- back in its line) or is re-routed by the console (its agent absent or silent), takes its agent when it
-- is assigned from the line, and ends at the next move or at the close. The events table is a replay log
-- pruned by age; these rows are history, never deleted but with their conversation.
--
-- Every timestamp is copied from the row that moved (assigned_at, closed_at, enqueued_at, updated_at) or
-- from the reply's row (updated_at when WhatsApp took it), so a report counts what the conversations say,
-- and traffic seeded with chosen times is reported at those times.

create table conversation_segments (
    id                 bigint generated always as identity primary key,
    tenant_id          uuid not null references tenants (id) on delete cascade,
    conversation_id    uuid not null,
    queue_id           uuid not null,
    agent_id           uuid,
    -- When the conversation was opened (created, or reopened): the customer's view of first response and
    -- resolution runs from here, across the segments of that opening.
    opened_at          timestamptz not null,
    start_kind         text not null check (start_kind in ('new', 'reopen', 'transfer', 'reroute')),
    started_at         timestamptz not null,
    -- It began waiting in the queue's line (not handed straight to an agent): it was queued there.
    queued             boolean not null,
    assigned_at        timestamptz,
    -- The segment's agent's first reply that WhatsApp took (a person's; automatic replies have no author).
    agent_reply_at     timestamptz,
    -- The opening's first reply of a person that WhatsApp took, carried into later segments of the opening;
    -- `episode_reply_here` marks the segment in which it was sent, and `episode_reply_by` who sent it.
    episode_reply_at   timestamptz,
    episode_reply_by   uuid,
    episode_reply_here boolean not null default false,
    ended_at           timestamptz,
    end_kind           text check (end_kind in ('transfer', 'reroute', 'close')),
    check ((ended_at is null) = (end_kind is null)),
    check ((agent_id is null) = (assigned_at is null)),
    foreign key (tenant_id, conversation_id) references conversations (tenant_id, id) on delete cascade,
    foreign key (tenant_id, queue_id) references queues (tenant_id, id),
    foreign key (tenant_id, agent_id) references users (tenant_id, id),
    foreign key (tenant_id, episode_reply_by) references users (tenant_id, id)
);

-- The one open segment of a conversation: what each move and reply updates.
create unique index conversation_segments_open_key on conversation_segments (tenant_id, conversation_id)
    where ended_at is null;
-- A conversation's segments in order (the CSV's per-conversation figures).
create index conversation_segments_conversation_idx
    on conversation_segments (tenant_id, conversation_id, started_at);
-- A report's range, one index per event time: a segment is read when any of its events falls in the range.
create index conversation_segments_started_idx on conversation_segments (tenant_id, started_at);
create index conversation_segments_assigned_idx on conversation_segments (tenant_id, assigned_at)
    where assigned_at is not null;
create index conversation_segments_agent_reply_idx on conversation_segments (tenant_id, agent_reply_at)
    where agent_reply_at is not null;
create index conversation_segments_episode_reply_idx on conversation_segments (tenant_id, episode_reply_at)
    where episode_reply_here;
create index conversation_segments_ended_idx on conversation_segments (tenant_id, ended_at)
    where ended_at is not null;

alter table conversation_segments enable row level security;
alter table conversation_segments force row level security;
create policy tenant_isolation on conversation_segments
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);
-- Written by the triggers below as the caller; absence.py marks its returns as re-routes.
grant select, insert, update on conversation_segments to fiv_app;

-- Runs as the caller (never security definer): the rows it writes are held to the caller's tenant.
create function conversation_segment_change() returns trigger
    language plpgsql
    set search_path = public, pg_temp
as $$
declare
    ended conversation_segments%rowtype;
    kind  text;
begin
    if tg_op = 'INSERT' then
        insert into conversation_segments (tenant_id, conversation_id, queue_id, agent_id, opened_at, start_kind,
                                           started_at, queued, assigned_at, ended_at, end_kind)
        values (new.tenant_id, new.id, new.queue_id, new.agent_id, new.enqueued_at, 'new', new.enqueued_at, true,
                case when new.agent_id is not null then coalesce(new.assigned_at, new.enqueued_at) end,
                case when new.status = 'closed' then new.closed_at end,
                case when new.status = 'closed' then 'close' end);
        return null;
    end if;
    if new.status = 'closed' then
        update conversation_segments set ended_at = new.closed_at, end_kind = 'close'
        where tenant_id = new.tenant_id and conversation_id = new.id and ended_at is null;
        return null;
    end if;
    if old.status = 'closed' then
        insert into conversation_segments (tenant_id, conversation_id, queue_id, agent_id, opened_at, start_kind,
                                           started_at, queued, assigned_at)
        values (new.tenant_id, new.id, new.queue_id, new.agent_id, new.enqueued_at, 'reopen', new.enqueued_at,
                new.status = 'waiting', case when new.agent_id is not null then new.assigned_at end);
        return null;
    end if;
    if old.status = 'waiting' and new.status = 'assigned' and old.queue_id = new.queue_id then
        update conversation_segments set agent_id = new.agent_id, assigned_at = new.assigned_at
        where tenant_id = new.tenant_id and conversation_id = new.id and ended_at is null;
        return null;
    end if;
    -- Another agent, another queue, or back in the line: the segment ends and the next begins. The console
    -- passes a conversation over when it takes it from a silent agent (unanswered.py); absence.py marks its
    -- own returns after its update.
    kind := case when new.passed_over_agent_id is not null
                      and new.passed_over_agent_id is distinct from old.passed_over_agent_id
                 then 'reroute' else 'transfer' end;
    update conversation_segments set ended_at = new.updated_at, end_kind = kind
    where tenant_id = new.tenant_id and conversation_id = new.id and ended_at is null
    returning * into ended;
    insert into conversation_segments (tenant_id, conversation_id, queue_id, agent_id, opened_at, start_kind,
                                       started_at, queued, assigned_at, episode_reply_at, episode_reply_by)
    values (new.tenant_id, new.id, new.queue_id, new.agent_id, coalesce(ended.opened_at, new.enqueued_at), kind,
            new.updated_at, new.status = 'waiting',
            case when new.agent_id is not null then coalesce(new.assigned_at, new.updated_at) end,
            ended.episode_reply_at, ended.episode_reply_by);
    return null;
end
$$;

create trigger conversations_segmented after insert on conversations
    for each row execute function conversation_segment_change();
-- Only a move: touching last_message_at, unread counts or the preview (every message) costs nothing.
create trigger conversations_segmented_moves after update of status, queue_id, agent_id on conversations
    for each row
    when (old.status is distinct from new.status or old.queue_id is distinct from new.queue_id
          or old.agent_id is distinct from new.agent_id)
    execute function conversation_segment_change();

-- A person's reply that WhatsApp took (queued -> sent; automatic replies and integrations have no author).
-- record_sent locks the conversation before the message, so this segment lock comes after the
-- conversation's, in the order the moves take them.
create function conversation_segment_reply() returns trigger
    language plpgsql
    set search_path = public, pg_temp
as $$
begin
    update conversation_segments s
    set agent_reply_at = case when s.agent_id = new.author_id and s.agent_reply_at is null
                              then new.updated_at else s.agent_reply_at end,
        episode_reply_here = s.episode_reply_here or s.episode_reply_at is null,
        episode_reply_by = case when s.episode_reply_at is null then new.author_id else s.episode_reply_by end,
        episode_reply_at = coalesce(s.episode_reply_at, new.updated_at)
    where s.tenant_id = new.tenant_id and s.conversation_id = new.conversation_id and s.ended_at is null
      and (s.episode_reply_at is null or (s.agent_id = new.author_id and s.agent_reply_at is null));
    return null;
end
$$;

create trigger messages_segment_reply after update of status on messages
    for each row
    when (old.status = 'queued' and new.status = 'sent' and new.author_id is not null)
    execute function conversation_segment_reply();

-- What is there already, tenant by tenant (row-level security is forced on the owner too): one segment per
-- conversation from its own columns. Moves before this migration were not recorded; the first response
-- is the conversation's own (`first_response_at`), its sender unknown.
do $$
declare
    t record;
begin
    for t in select id from tenants loop
        perform set_config('app.current_tenant', t.id::text, true);
        insert into conversation_segments (tenant_id, conversation_id, queue_id, agent_id, opened_at, start_kind,
                                           started_at, queued, assigned_at, agent_reply_at, episode_reply_at,
                                           episode_reply_here, ended_at, end_kind)
        select c.tenant_id, c.id, c.queue_id, c.agent_id, c.enqueued_at, 'new', c.enqueued_at, true,
               case when c.agent_id is not null then coalesce(c.assigned_at, c.enqueued_at) end,
               case when c.agent_id is not null and c.first_response_at >= c.assigned_at then c.first_response_at end,
               c.first_response_at, c.first_response_at is not null,
               case when c.status = 'closed' then c.closed_at end,
               case when c.status = 'closed' then 'close' end
        from conversations c
        where c.tenant_id = t.id;
    end loop;
    perform set_config('app.current_tenant', '', true);
end
$$;

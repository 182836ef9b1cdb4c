-- What the assignment engine adds: queues' business hours and their out-of-hours reply, a conversation's
-- SLA breach, the agent an unanswered conversation was taken from, and when the customer was last told
-- about hours or their place in the line (so each reply goes once).

-- Business hours in the tenant's time zone: {"mon": [["09:00", "18:00"]], ...}; null means always open.
-- Validated by the application (fiv_console.business_hours); the database keeps only its shape.
alter table queues
    add column business_hours jsonb check (business_hours is null or jsonb_typeof(business_hours) = 'object'),
    add column out_of_hours_message text check (length(out_of_hours_message) between 1 and 4096);

alter table conversations
    -- When it first waited past its queue's SLA target (an event said so then); a reopen starts afresh.
    add column sla_breached_at timestamptz,
    -- The agent it was re-routed away from for leaving it unanswered: not given back to them while it waits.
    add column passed_over_agent_id uuid,
    add column out_of_hours_replied_at timestamptz,
    add column position_replied_at timestamptz,
    add foreign key (tenant_id, passed_over_agent_id) references users (tenant_id, id);

-- The oldest waiting of a queue, whatever the priority, is one index probe (the wallboard, the SLA sweep).
create index conversations_oldest_waiting_idx
    on conversations (tenant_id, queue_id, enqueued_at) where status = 'waiting';
-- Messages still on their way out: automatic replies a stopped instance left behind are sent again.
create index messages_queued_idx on messages (tenant_id, updated_at) where status = 'queued';
-- Recent assignments of a queue (the estimated wait).
create index conversations_assigned_at_idx
    on conversations (tenant_id, queue_id, assigned_at) where assigned_at is not null;

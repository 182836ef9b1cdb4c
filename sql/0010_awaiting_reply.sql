-- When a conversation's customer started waiting for an answer: the arrival of their first message that no
-- reply has answered yet, or null when nothing they wrote awaits one. The re-routing of unanswered
-- conversations counts from it (or from the assignment, if later), so a customer who keeps writing does not
-- restart the clock of an agent who keeps silent.
--
-- A customer's message sets it if it is null (intake, in the statement that already touches the
-- conversation); a reply that WhatsApp took, other than the console's automatic ones, answers what the
-- customer wrote before it was queued, and moves it to their first message after that, or clears it
-- (outbound, when the send is recorded). The sweep then reads the few conversations overdue from an index,
-- never messages.
alter table conversations add column awaiting_reply_since timestamptz;

create index conversations_awaiting_reply_idx
    on conversations (tenant_id, awaiting_reply_since)
    where status = 'assigned' and awaiting_reply_since is not null;

-- What is there already, tenant by tenant (row-level security is forced on the schema owner too, 0007):
-- the first customer message after the last reply that WhatsApp took and that was not automatic. Closed
-- conversations are left alone; WhatsApp's notices (kind `system`) are not the customer writing.
do $$
declare
    t record;
begin
    for t in select id from tenants loop
        perform set_config('app.current_tenant', t.id::text, true);
        update conversations c
        set awaiting_reply_since = (
            select min(m.created_at) from messages m
            where m.tenant_id = c.tenant_id and m.conversation_id = c.id
              and m.direction = 'inbound' and m.kind <> 'system'
              and m.created_at > coalesce((
                  select max(r.created_at) from messages r
                  where r.tenant_id = c.tenant_id and r.conversation_id = c.id and r.direction = 'outbound'
                    and r.status in ('sent', 'delivered', 'read')
                    and (r.details is null or not r.details ? 'automatic')
              ), '-infinity')
        )
        where c.tenant_id = t.id and c.status <> 'closed';
    end loop;
    perform set_config('app.current_tenant', '', true);
end
$$;

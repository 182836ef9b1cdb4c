-- The list filtered by a label, in its default order (most recent activity first), as a range of one index.
-- With the label's rows keyed only by conversation, a page had to read every conversation with the label
-- and sort them (a label on 1% of 100,000 conversations: 1,000 rows for a page of 50), or walk the whole
-- tenant in activity order probing each for the label. So each label row keeps its conversation's activity
-- time, indexed after the label: a page walks the label's rows newest first and joins only those to their
-- conversations, under the same forced tenant policy (plain equalities and comparisons on keyed columns).
alter table conversation_labels add column last_message_at timestamptz;

-- Copied when the label is put on. The conversation is share-locked while its time is read: an intake
-- transaction that has moved the time on (and not yet committed) is waited for and its time read, and one
-- that moves it after finds this row committed when its own trigger runs (below). Row by row, so a
-- restore that turns triggers off must copy the column itself.
create function conversation_label_activity() returns trigger
    language plpgsql
    set search_path = public, pg_temp
as $$
begin
    select c.last_message_at into new.last_message_at
    from conversations c
    where c.tenant_id = new.tenant_id and c.id = new.conversation_id
    for share;
    return new;
end
$$;

create trigger conversation_labels_activity
    before insert on conversation_labels
    for each row execute function conversation_label_activity();

-- Moved along with the conversation's, in the same transaction, so a list statement's snapshot sees the
-- conversation and its label rows agree. Only conversations with labels have rows to change; the others
-- cost one probe of the primary key.
create function conversation_labels_follow_activity() returns trigger
    language plpgsql
    set search_path = public, pg_temp
as $$
begin
    update conversation_labels
    set last_message_at = new.last_message_at
    where tenant_id = new.tenant_id and conversation_id = new.id;
    return null;
end
$$;

create trigger conversations_label_activity
    after update of last_message_at on conversations
    for each row
    when (old.last_message_at is distinct from new.last_message_at)
    execute function conversation_labels_follow_activity();

-- What is there already, tenant by tenant (row-level security is forced on the schema owner too).
do $$
declare
    t record;
begin
    for t in select id from tenants loop
        perform set_config('app.current_tenant', t.id::text, true);
        update conversation_labels cl
        set last_message_at = c.last_message_at
        from conversations c
        where cl.tenant_id = t.id and c.tenant_id = t.id and c.id = cl.conversation_id;
    end loop;
    perform set_config('app.current_tenant', '', true);
end
$$;

alter table conversation_labels alter column last_message_at set not null;

-- Replaces (tenant_id, label_id), its prefix: how many conversations have a label, and the label filter.
drop index conversation_labels_label_idx;
create index conversation_labels_activity_idx
    on conversation_labels (tenant_id, label_id, last_message_at, conversation_id);

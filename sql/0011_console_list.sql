-- The console's conversation list at a busy tenant's scale: what each row shows kept on the conversation,
-- an index for each filter the list offers, and search that row-level security lets use an index.
--
-- 1. What a list row shows without reading messages: how many of the customer's messages are unread and a
--    preview of the newest message. The statements that already change the conversation keep them (the
--    intake's touch, a reply's touch, read marks claimed and released), in the same transactions.
alter table conversations
    add column unread_count integer not null default 0 check (unread_count >= 0),
    add column last_message_id uuid,
    add column last_message_direction text check (last_message_direction in ('inbound', 'outbound')),
    add column last_message_kind text,
    add column last_message_text text check (char_length(last_message_text) <= 140),
    add column last_message_created_at timestamptz;

-- 2. Keyset pages need a total order without nulls: a conversation opened by a message has its time at
--    once, and one made otherwise counts from its creation.
alter table conversations alter column last_message_at set default now();

-- 3. Search. ILIKE, pg_trgm's operators and full-text `@@` are not leakproof, so under the forced tenant
--    policy PostgreSQL applies them only after the tenant's rows are found: no index on them is ever used,
--    and a search reads every message of the tenant. Plain text comparisons are leakproof, so the words
--    are kept in b-tree tables instead, and a word typed is looked up as a range (`term >= 'sil' and term
--    < 'sil' || chr(1114111)`: every word that starts with it). The words of a text: lower-cased, split on
--    white space and punctuation, at most 64 characters each.
create function console_search_terms(value text) returns text[]
    language sql immutable parallel safe
    set search_path = pg_catalog, pg_temp
as $$
    select coalesce(array_agg(distinct left(t, 64)), '{}')
    from regexp_split_to_table(lower(value), '[\s!-/:-@\[-`{-~¡¿«»“”‘’…–—]+') as t
    where t <> ''
$$;

-- A contact's words: its name and profile name, and every tail of its number from three digits on (so any
-- part of a number is found: a tail starting at that part).
create function console_contact_terms(name text, profile_name text, wa_id text) returns text[]
    language sql immutable parallel safe
    set search_path = pg_catalog, pg_temp
as $$
    select coalesce(array_agg(distinct t), '{}')
    from (
        select unnest(public.console_search_terms(concat_ws(' ', name, profile_name))) as t
        union all
        select right(wa_id, n) from generate_series(3, char_length(wa_id)) as n
    ) s
$$;

-- One row per word per conversation (not per message: a chat repeats its words), naming the newest message
-- that has it, so a search can open the conversation there.
create table conversation_terms (
    tenant_id       uuid not null references tenants (id) on delete cascade,
    term            text collate "C" not null,
    conversation_id uuid not null,
    message_id      uuid not null,
    message_at      timestamptz not null,
    primary key (tenant_id, term, conversation_id),
    foreign key (tenant_id, conversation_id) references conversations (tenant_id, id) on delete cascade
);

create table contact_terms (
    tenant_id  uuid not null references tenants (id) on delete cascade,
    term       text collate "C" not null,
    contact_id uuid not null,
    primary key (tenant_id, term, contact_id),
    foreign key (tenant_id, contact_id) references contacts (tenant_id, id) on delete cascade
);

alter table conversation_terms enable row level security;
alter table conversation_terms force row level security;
create policy tenant_isolation on conversation_terms
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);
alter table contact_terms enable row level security;
alter table contact_terms force row level security;
create policy tenant_isolation on contact_terms
    using (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.current_tenant', true), '')::uuid);
grant select, insert, update on conversation_terms to fiv_app;
grant select, insert, delete on contact_terms to fiv_app;

-- Kept by triggers, so every writer of messages and contacts (intake, replies, automatic replies, the
-- demo, imports) keeps them alike. They run as the caller (never security definer): what they write is
-- held to the caller's tenant. One statement per batch of messages, its words sorted by key, so
-- concurrent batches lock term rows in one order.
create function conversation_terms_of_messages() returns trigger
    language plpgsql
    set search_path = public, pg_temp
as $$
begin
    insert into conversation_terms as ct (tenant_id, term, conversation_id, message_id, message_at)
    select distinct on (n.tenant_id, w.term, n.conversation_id)
           n.tenant_id, w.term, n.conversation_id, n.id, n.created_at
    from new_messages n
    cross join lateral unnest(console_search_terms(n.text)) as w(term)
    where n.text is not null
    order by n.tenant_id, w.term, n.conversation_id, n.created_at desc, n.id desc
    on conflict (tenant_id, term, conversation_id) do update
    set message_id = excluded.message_id, message_at = excluded.message_at
    where ct.message_at <= excluded.message_at;
    return null;
end
$$;

create trigger messages_search_terms
    after insert on messages
    referencing new table as new_messages
    for each statement execute function conversation_terms_of_messages();

create function contact_terms_of_contact() returns trigger
    language plpgsql
    set search_path = public, pg_temp
as $$
begin
    if tg_op = 'UPDATE' then
        delete from contact_terms
        where tenant_id = old.tenant_id and contact_id = old.id
          and term = any(console_contact_terms(old.name, old.profile_name, old.wa_id));
    end if;
    insert into contact_terms (tenant_id, term, contact_id)
    select new.tenant_id, t, new.id
    from unnest(console_contact_terms(new.name, new.profile_name, new.wa_id)) as t
    order by t
    on conflict do nothing;
    return null;
end
$$;

create trigger contacts_search_terms_insert
    after insert on contacts
    for each row execute function contact_terms_of_contact();
-- The intake's upsert sets the profile name on every message: only a real change rewrites the words.
create trigger contacts_search_terms_update
    after update of name, profile_name, wa_id on contacts
    for each row
    when (old.name is distinct from new.name or old.profile_name is distinct from new.profile_name
          or old.wa_id is distinct from new.wa_id)
    execute function contact_terms_of_contact();

-- 4. An index for each filter of the list, in its default order (most recent activity first, read
--    backwards) with the id that breaks ties, so a page is a range of one index: all, by status, by queue,
--    by agent, the line of waiting conversations longest waiting first, and all by creation. The older
--    (tenant_id, status) and (tenant_id, last_message_at desc) are prefixes of these.
drop index conversations_tenant_status_idx;
drop index conversations_tenant_activity_idx;
create index conversations_activity_idx on conversations (tenant_id, last_message_at, id);
create index conversations_status_activity_idx on conversations (tenant_id, status, last_message_at, id);
create index conversations_queue_activity_idx on conversations (tenant_id, queue_id, last_message_at, id);
create index conversations_agent_activity_idx on conversations (tenant_id, agent_id, last_message_at, id)
    where agent_id is not null;
create index conversations_waiting_line_idx on conversations (tenant_id, enqueued_at, id)
    where status = 'waiting';
create index conversations_created_idx on conversations (tenant_id, created_at, id);

-- 5. What is there already, tenant by tenant (row-level security is forced on the schema owner too).
do $$
declare
    t record;
begin
    for t in select id from tenants loop
        perform set_config('app.current_tenant', t.id::text, true);
        update conversations c
        set last_message_at = coalesce(c.last_message_at, c.created_at),
            unread_count = coalesce((
                select count(*) from messages m
                where m.tenant_id = c.tenant_id and m.conversation_id = c.id
                  and m.direction = 'inbound' and m.read_at is null
            ), 0),
            last_message_id = l.id,
            last_message_direction = l.direction,
            last_message_kind = l.kind,
            last_message_text = left(l.text, 140),
            last_message_created_at = l.created_at
        from conversations c2
        left join lateral (
            select m.id, m.direction, m.kind, m.text, m.created_at from messages m
            where m.tenant_id = c2.tenant_id and m.conversation_id = c2.id
            order by m.created_at desc, m.id desc limit 1
        ) l on true
        where c.tenant_id = t.id and c2.tenant_id = t.id and c2.id = c.id;

        insert into conversation_terms (tenant_id, term, conversation_id, message_id, message_at)
        select distinct on (m.tenant_id, w.term, m.conversation_id)
               m.tenant_id, w.term, m.conversation_id, m.id, m.created_at
        from messages m
        cross join lateral unnest(console_search_terms(m.text)) as w(term)
        where m.tenant_id = t.id and m.text is not null
        order by m.tenant_id, w.term, m.conversation_id, m.created_at desc, m.id desc;

        insert into contact_terms (tenant_id, term, contact_id)
        select k.tenant_id, w.term, k.id
        from contacts k
        cross join lateral unnest(console_contact_terms(k.name, k.profile_name, k.wa_id)) as w(term)
        where k.tenant_id = t.id;
    end loop;
    perform set_config('app.current_tenant', '', true);
end
$$;

alter table conversations alter column last_message_at set not null;

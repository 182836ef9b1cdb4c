-- A tenant's retention (its setting `retention_days`): its closed conversations closed longer ago than
-- that are deleted, with their messages, notes, labels and search words (their foreign keys cascade) and
-- the delivery statuses and reactions of their messages (keyed by Meta's message ids, not by ours), in
-- small batches by a background job. Contacts stay.
--
-- The server's role may delete none of these tables (a bug could not lose a conversation); it may call this
-- function, which deletes only in the tenant its transaction has set, and only what was closed before the
-- time it is given.

create index conversations_closed_idx on conversations (tenant_id, closed_at) where status = 'closed';

create function purge_closed_conversations(p_closed_before timestamptz, p_limit integer)
    returns integer
    language plpgsql security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    tenant uuid := nullif(current_setting('app.current_tenant', true), '')::uuid;
    purged integer;
begin
    if tenant is null then
        raise exception 'purge_closed_conversations: no tenant is set';
    end if;
    with doomed as (
        select c.id from public.conversations c
        where c.tenant_id = tenant and c.status = 'closed' and c.closed_at < p_closed_before
        order by c.closed_at
        limit p_limit
        -- A conversation being reopened right now is left for the next round.
        for update skip locked
    ), statuses as (
        delete from public.message_statuses s
        using public.messages m
        where m.tenant_id = tenant and m.conversation_id in (select id from doomed)
          and s.tenant_id = tenant and s.channel_id = m.channel_id and s.wa_message_id = m.wa_message_id
    ), reactions as (
        delete from public.message_reactions r
        using public.messages m
        where m.tenant_id = tenant and m.conversation_id in (select id from doomed)
          and r.tenant_id = tenant and r.channel_id = m.channel_id and r.target_wa_message_id = m.wa_message_id
    )
    delete from public.conversations c
    where c.tenant_id = tenant and c.id in (select id from doomed);
    get diagnostics purged = row_count;
    return purged;
end
$$;

revoke all on function purge_closed_conversations(timestamptz, integer) from public;
grant execute on function purge_closed_conversations(timestamptz, integer) to fiv_app;

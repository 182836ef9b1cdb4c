-- API tokens outlive the people who made them on purpose (they belong to the tenant), so what keeps them
-- accountable is visible here: an optional expiry, and which token made a token (a token minted with a
-- token has no person as its creator; `created_by` stays null for it).

alter table api_tokens
    add column expires_at timestamptz,
    add column created_by_token_id uuid,
    add constraint api_tokens_expiry_after_creation check (expires_at is null or expires_at > created_at),
    add constraint api_tokens_created_by_token_fkey
        foreign key (tenant_id, created_by_token_id) references api_tokens (tenant_id, id);

-- An expired token is refused like an unknown or revoked one: the lookup does not find it. Same signature,
-- so the owner, the revoked PUBLIC grant and fiv_app's EXECUTE stay as 0002 set them.
create or replace function api_token_for_hash(p_token_hash bytea)
    returns table (tenant_id uuid, token_id uuid)
    language sql stable security definer
    set search_path = pg_catalog, pg_temp
as $$
    select t.tenant_id, t.id from public.api_tokens t
    where t.token_hash = p_token_hash and t.revoked_at is null and (t.expires_at is null or t.expires_at > now())
$$;

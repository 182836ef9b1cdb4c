-- Workspaces: each tenant gets a short slug that people type when they sign in, and emails become unique
-- per tenant. Before this, one global email list let a tenant admin learn that an address existed in
-- another tenant (the duplicate was refused) and reserve an address before its owner's company added it.

alter table tenants add column slug text;

-- Existing tenants get a slug from their name (accents dropped, anything but letters and digits becoming
-- one hyphen, at most 40 characters, "workspace" if nothing is left), numbered -2, -3, ... where taken,
-- oldest tenant first. Each update runs as its tenant: the tenant policy holds the owner too where the
-- owner is not a superuser (FORCE), and the owner may read every tenant through owner_lookup (0005).
do $$
declare
    tenant record;
    base text;
    candidate text;
    n integer;
begin
    for tenant in select t.id, t.name from public.tenants t order by t.created_at, t.id loop
        base := tenant.name;
        if current_setting('server_encoding') = 'UTF8' then
            base := regexp_replace(normalize(base, NFKD), '[\u0300-\u036f]', '', 'g');
        end if;
        base := rtrim(left(btrim(regexp_replace(lower(base), '[^a-z0-9]+', '-', 'g'), '-'), 40), '-');
        if base = '' then
            base := 'workspace';
        end if;
        candidate := base;
        n := 1;
        while exists (select 1 from public.tenants t where t.slug = candidate) loop
            n := n + 1;
            candidate := rtrim(left(base, 39 - length(n::text)), '-') || '-' || n;
        end loop;
        perform set_config('app.current_tenant', tenant.id::text, true);
        update public.tenants set slug = candidate where id = tenant.id;
    end loop;
    perform set_config('app.current_tenant', '', true);
end
$$;

alter table tenants
    alter column slug set not null,
    add constraint tenants_slug_check check (slug ~ '^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$'),
    add constraint tenants_slug_key unique (slug);

-- The same address may belong to people of different tenants; within a tenant it is still one person
-- (emails are stored lower-case, so this ignores case as before).
alter table users
    drop constraint users_email_key,
    add constraint users_tenant_id_email_key unique (tenant_id, email);

-- Sign-in names the workspace and the email; the lookup answers with ids only, and nothing at all for a
-- workspace or an email that does not exist, so the caller can answer both alike.
drop function user_for_login(text);

create function user_for_login(p_workspace text, p_email text)
    returns table (tenant_id uuid, user_id uuid)
    language sql stable security definer
    set search_path = pg_catalog, pg_temp
as $$
    select u.tenant_id, u.id
    from public.tenants t
    join public.users u on u.tenant_id = t.id
    where t.slug = lower(p_workspace) and u.email = lower(p_email)
$$;

-- A deployment with one tenant does not ask for the workspace: its slug, or null when there are none or
-- several (two rows read at most, whatever the number of tenants).
create function sole_workspace()
    returns text
    language sql stable security definer
    set search_path = pg_catalog, pg_temp
as $$
    select min(t.slug) from (select t.slug from public.tenants t limit 2) t having count(*) = 1
$$;

revoke all on function user_for_login(text, text), sole_workspace() from public;
grant execute on function user_for_login(text, text), sole_workspace() to fiv_app;

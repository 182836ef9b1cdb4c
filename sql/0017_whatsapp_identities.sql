-- Customers with usernames. Since April 2026 Meta identifies a WhatsApp user to a business by a
-- business-scoped user id (BSUID: `US.13491208655302741918`, a country code, a period and up to 128 letters
-- and digits; a parent BSUID has `.ENT.` in it), and leaves the phone number out of the webhooks of a user
-- who adopted a username. So a contact is known by its number, its BSUID or both: each is unique within the
-- tenant, and one of them is always there. The username and the BSUID's country code are kept for display.
-- A WhatsApp group the business is in (Groups API, 2025) is a contact too, known by its group id: its
-- conversation is the group's, and each message names the participant who wrote it.
alter table contacts
    alter column wa_id drop not null,
    add column user_id text check (length(user_id) between 1 and 256),
    add column username text check (length(username) <= 200),
    add column country_code text check (length(country_code) <= 8),
    add column group_id text check (length(group_id) between 1 and 256),
    add constraint contacts_identified check (wa_id is not null or user_id is not null or group_id is not null),
    add constraint contacts_tenant_user_id_key unique (tenant_id, user_id),
    add constraint contacts_tenant_group_id_key unique (tenant_id, group_id);

-- When a body links a number and a BSUID known as two contacts, the intake merges them: the newer contact's
-- conversations move to the older one, and the newer contact goes.
grant delete on contacts to fiv_app;
-- An open conversation merged into another brings its notes along; notes are otherwise never changed.
grant update (conversation_id) on notes to fiv_app;

-- A username is found as a name is.
create or replace function contact_terms_of_contact() returns trigger
    language plpgsql
    set search_path = public, pg_temp
as $$
begin
    if tg_op = 'UPDATE' then
        delete from contact_terms
        where tenant_id = old.tenant_id and contact_id = old.id
          and term = any(console_contact_terms(old.name, concat_ws(' ', old.profile_name, old.username), old.wa_id));
    end if;
    insert into contact_terms (tenant_id, term, contact_id)
    select new.tenant_id, t, new.id
    from unnest(console_contact_terms(new.name, concat_ws(' ', new.profile_name, new.username), new.wa_id)) as t
    order by t
    on conflict do nothing;
    return null;
end
$$;

drop trigger contacts_search_terms_update on contacts;
create trigger contacts_search_terms_update
    after update of name, profile_name, username, wa_id on contacts
    for each row
    when (old.name is distinct from new.name or old.profile_name is distinct from new.profile_name
          or old.username is distinct from new.username or old.wa_id is distinct from new.wa_id)
    execute function contact_terms_of_contact();

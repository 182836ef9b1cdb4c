-- A WhatsApp group's name. Message webhooks do not carry it; the group webhooks do (`group_lifecycle_update`
-- when the business creates a group, `group_settings_update` when its subject or description changes), and
-- `GET /<GROUP_ID>?fields=subject,description` answers it. The subject is the group contact's
-- `profile_name` (what WhatsApp calls it, shown after the name the team gives); its description is kept
-- beside it. Meta may deliver an older change after a newer one: `group_subject_at` and
-- `group_description_at` are the times of the subject and of the description stored (the webhook's
-- timestamp, or when the group was fetched), each its own, since one change may say only one of them; an
-- older subject, or an older description, is not applied.
alter table contacts
    add column group_description text check (length(group_description) <= 2048),
    add column group_subject_at timestamptz,
    add column group_description_at timestamptz;

-- The WhatsApp Business Account a channel's number belongs to. Templates are the account's, not the
-- number's: the console lists them with `GET /{waba_id}/message_templates` and checks a template reply
-- against them before it goes to Meta. Null until an admin sets it; a channel without one sends no template.
alter table channels add column waba_id text check (waba_id ~ '^[0-9]{5,32}$');

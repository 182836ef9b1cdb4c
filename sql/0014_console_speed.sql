-- Search by a word many contacts share (a common first name) answers in milliseconds instead of seconds.
-- The words tables are keyed by word first (sql/0011), which finds a word's contacts and conversations
-- but cannot say whether one given conversation has a word without scanning the word's whole range. These
-- keys, with the word last, make that a lookup: a search whose words are all common walks the list in its
-- order and asks each conversation whether its contact's or its own words have every word typed, stopping
-- at the page's end; a search with a rare word starts from that word's few conversations and asks them
-- the same of the others (conversations/listing.py). Both are plain equalities and ranges on keyed columns,
-- which the forced tenant policy lets an index serve.
create index contact_terms_contact_idx on contact_terms (tenant_id, contact_id, term);
create index conversation_terms_conversation_idx on conversation_terms (tenant_id, conversation_id, term);

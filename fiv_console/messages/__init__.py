"""Messages: what customers write and what agents answer.

The history (`history`), webhook intake and inbound storing (`intake`, `inbound`, `dead_letters`),
replies and their delivery (`outbound`, `sending`), receipts (`statuses`), media files and canned
responses.
"""

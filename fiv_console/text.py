"""Free text that PostgreSQL can store: the rule every text input field carries besides its length.

PostgreSQL's `text` cannot hold NUL (U+0000): a string with one fails in the database, which would be a 500
after the checks had passed. A `pattern` refuses it at the boundary with the other validation errors (400),
and, being part of the JSON schema, the OpenAPI document tells clients and fuzzers the same.
"""

from __future__ import annotations

NO_NUL = r"^[^\x00]*$"

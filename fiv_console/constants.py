"""Names shared with the outside: Redis key prefixes and channels, cookie and header names."""

# Redis keys (every key this server writes starts with "fiv:").
RATE_LIMIT_KEY_PREFIX = "fiv:rate:"

SESSION_COOKIE = "fiv_session"
CSRF_HEADER = "X-CSRF-Token"

"""Names shared with the outside: Redis key prefixes, cookie and header names, the demo's WhatsApp number."""

# Redis keys (every key this server writes starts with "fiv:").
RATE_LIMIT_KEY_PREFIX = "fiv:rate:"

SESSION_COOKIE = "fiv_session"
CSRF_HEADER = "X-CSRF-Token"

# The demo tenant's business number, which the simulator also serves by default. Here rather than beside
# the demo's seed so that the command line can offer it without loading the simulator for every command.
DEMO_PHONE_NUMBER_ID = "100000000000001"
DEMO_DISPLAY_NUMBER = "+1 555 0100"
SIMULATOR_PORT = 8090

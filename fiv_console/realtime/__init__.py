"""Live delivery: this instance's agent sockets, the per-tenant feeds that order events for them, and presence."""

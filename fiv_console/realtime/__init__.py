"""Live delivery: this instance's agent sockets, the per-tenant feeds that order events for them, the wire
format between instances, and the upkeep of presence leases and the event log's retention."""

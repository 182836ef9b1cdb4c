"""WhatsApp Cloud API: webhook payloads (parsing into normalized records); intake, client and simulator to come."""

"""WhatsApp Cloud API: what speaks Meta's protocol (webhook payloads and signature, the Graph API client)."""

"""WhatsApp Cloud API: webhook payloads and signature, intake, the Graph API client, and the simulator."""

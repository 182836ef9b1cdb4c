"""Fi.V Console: a real-time WhatsApp customer-service console server."""

__version__ = "0.1.0"

"""Operators' view of the running server: JSON logging, the per-request context, health checks."""

"""Logging, health and (later) metrics: what operators see of the running server."""

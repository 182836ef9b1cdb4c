"""Prometheus metrics: what each instance counts as it works, and what it reads off its state when scraped.

Counted where it happens (module-level families in `REGISTRY`, one process an instance): requests by route
template and status, events announced, bus messages published and its reconnects, frames sent to console
sockets, webhook messages, statuses, duplicates and dead letters, Graph API calls and Meta's error codes,
conversations assigned and how long after a wake-up. Read when scraped (`InstanceCollector`, one per app):
open console sockets and their queued frames, the database pool, the event loop's lag. Labels here never
carry a tenant, a user or a conversation: 10,000 tenants must not become 10,000 series (waiting per queue,
`observability/waiting.py`, names a tenant only while one of its queues has someone waiting).
docs/operations.md lists every family with what to alert on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Histogram(
    "fiv_http_request_duration_seconds",
    "Requests answered, by method, route template and status, and how long each took.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
EVENTS_ANNOUNCED = Counter(
    "fiv_events_appended", "Events this instance committed to the event log and announced.", registry=REGISTRY
)
BUS_PUBLISHED = Counter(
    "fiv_bus_published", "Messages this instance published on the bus (events and notices).", registry=REGISTRY
)
BUS_RECONNECTS = Counter(
    "fiv_bus_reconnects", "Times the Redis bus lost its connection and reconnected.", registry=REGISTRY
)
FRAMES_SENT = Counter(
    "fiv_socket_frames_sent", "Frames written to console sockets (events delivered, replies, pings).", registry=REGISTRY
)
SOCKETS_CLOSED_SLOW = Counter(
    "fiv_socket_closed_slow", "Console sockets closed because their client did not read (1013).", registry=REGISTRY
)
WEBHOOK_MESSAGES = Counter("fiv_webhook_messages", "Customers' messages stored from webhooks.", registry=REGISTRY)
WEBHOOK_STATUSES = Counter("fiv_webhook_statuses", "Delivery statuses recorded from webhooks.", registry=REGISTRY)
WEBHOOK_DUPLICATES = Counter(
    "fiv_webhook_duplicates", "Messages Meta delivered again, recognised and not stored twice.", registry=REGISTRY
)
WEBHOOK_DEAD_LETTERS = Counter(
    "fiv_webhook_dead_letters", "Webhook parts no tenant could take, kept as dead letters.", registry=REGISTRY
)
GRAPH_CALLS = Counter(
    "fiv_graph_calls", "Graph API calls (after retries), by operation and outcome.", ["operation", "outcome"],
    registry=REGISTRY,
)  # fmt: skip
GRAPH_ERRORS = Counter(
    "fiv_graph_errors", "Graph API failures, each attempt, by operation and Meta's error code.", ["operation", "code"],
    registry=REGISTRY,
)  # fmt: skip
ASSIGNED = Counter("fiv_assignment_assigned", "Conversations the assignment loop assigned.", registry=REGISTRY)
WAKE_TO_ASSIGNED = Histogram(
    "fiv_assignment_wake_to_assigned_seconds",
    "From an event that may free an agent or bring a conversation to the end of the round it woke.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)


@dataclass(frozen=True, slots=True)
class InstanceState:
    """What the instance collector reads when scraped, as functions of the app's live objects."""

    sockets: Callable[[], int]
    queued_frames: Callable[[], int]
    pool_size: Callable[[], int]
    pool_idle: Callable[[], int]
    pool_waiting: Callable[[], int]
    loop_lag_seconds: Callable[[], float]


class InstanceCollector(Collector):
    """The instance's state at the moment of the scrape."""

    def __init__(self, state: InstanceState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state
        yield GaugeMetricFamily("fiv_console_sockets", "Console sockets open on this instance.", state.sockets())
        yield GaugeMetricFamily(
            "fiv_console_socket_queued_frames",
            "Frames queued for console sockets, not yet written.",
            state.queued_frames(),
        )
        size, idle = state.pool_size(), state.pool_idle()
        yield GaugeMetricFamily("fiv_db_pool_connections", "Connections the database pool holds.", size)
        yield GaugeMetricFamily("fiv_db_pool_in_use", "Pooled connections in use.", size - idle)
        yield GaugeMetricFamily(
            "fiv_db_pool_waiting", "Requests waiting for a pooled connection.", state.pool_waiting()
        )
        yield GaugeMetricFamily(
            "fiv_event_loop_lag_seconds", "How late the event loop last ran a timer.", state.loop_lag_seconds()
        )


def exposition(instance: CollectorRegistry) -> bytes:
    """The text format: the process's counters, then the instance's state."""
    return generate_latest(REGISTRY) + generate_latest(instance)

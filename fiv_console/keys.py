"""Every typed `web.AppKey` of the application, in one place."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from fiv_console.accounts.rate_limit import RateLimiter
from fiv_console.assignment.loop import AssignmentLoop
from fiv_console.bus.base import Bus
from fiv_console.db.pool import Database
from fiv_console.messages.group_names import GroupNames
from fiv_console.messages.intake import Intake
from fiv_console.messages.sending import TypingThrottle
from fiv_console.observability.loop_lag import LoopLag
from fiv_console.observability.waiting import WaitingLines
from fiv_console.realtime import wire
from fiv_console.realtime.hub import Hub
from fiv_console.realtime.upkeep import Upkeep
from fiv_console.settings import Settings
from fiv_console.web.in_flight import InFlight
from fiv_console.whatsapp.client import GraphClient
from fiv_console.whatsapp.template_cache import TemplateCache

settings_key = web.AppKey("settings", Settings)
database_key = web.AppKey("database", Database)
# Present only when REDIS_URL is configured.
redis_key = web.AppKey("redis", Redis)
rate_limiter_key = web.AppKey("rate_limiter", RateLimiter)
graph_client_key = web.AppKey("graph_client", GraphClient)
# Each channel's message templates, kept a while (`graph_client_ctx` owns it with the client).
template_cache_key = web.AppKey("template_cache", TemplateCache)
typing_throttle_key = web.AppKey("typing_throttle", TypingThrottle)
intake_key = web.AppKey("intake", Intake)
# Fetches the names of WhatsApp groups that write in unnamed (tests drain it).
group_names_key = web.AppKey("group_names", GroupNames)
# This process's id among the instances (connection leases, the bus).
instance_id_key = web.AppKey("instance_id", UUID)
bus_key = web.AppKey("bus", Bus[wire.Message])
hub_key = web.AppKey("hub", Hub)
upkeep_key = web.AppKey("upkeep", Upkeep)
assignment_key = web.AppKey("assignment", AssignmentLoop)
loop_lag_key = web.AppKey("loop_lag", LoopLag)
metrics_registry_key = web.AppKey("metrics_registry", CollectorRegistry)
# The deployment's waiting lines as /metrics last read them (kept a few seconds).
waiting_lines_key = web.AppKey("waiting_lines", WaitingLines)
in_flight_key = web.AppKey("in_flight", InFlight)

"""The demo's WhatsApp: the Cloud API simulator and gentle customer traffic, inside the demo's process.

`fiv-console demo` should show a new user a console that is alive: customers write every few seconds,
replies go out through the simulator and come back as delivered and read. Both run as one resource of the
demo app (`cleanup_ctx`), so they start and stop with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from fiv_console.constants import DEMO_DISPLAY_NUMBER, DEMO_PHONE_NUMBER_ID
from fiv_console.simulation.cloud_api import SimulatorConfig, SimulatorServer
from fiv_console.simulation.traffic import TrafficConfig, TrafficGenerator

# A new customer message every five seconds or so, from a dozen customers: lively, not overwhelming.
DEMO_RATE = 0.2
DEMO_CUSTOMERS = 12
# The console's site starts listening only after its resources; the first message waits for it.
_FIRST_MESSAGE_DELAY = 2.0


def demo_traffic(
    *, app_secret: bytes, simulator_port: int, webhook_url: str
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A `cleanup_ctx` running the simulator on `simulator_port` and customers writing to `webhook_url`."""
    display_digits = "".join(character for character in DEMO_DISPLAY_NUMBER if character.isdigit())

    async def context(app: web.Application) -> AsyncIterator[None]:
        config = SimulatorConfig(
            app_secret=app_secret, console_url=webhook_url, display_numbers={DEMO_PHONE_NUMBER_ID: display_digits}
        )
        async with SimulatorServer(config, port=simulator_port) as server:
            generator = TrafficGenerator(
                TrafficConfig(
                    webhook_url=webhook_url,
                    app_secret=app_secret,
                    phone_number_id=DEMO_PHONE_NUMBER_ID,
                    display_number=display_digits,
                    rate=DEMO_RATE,
                    customers=DEMO_CUSTOMERS,
                ),
                counterpart=server.simulator,
            )

            async def customers_write() -> None:
                await asyncio.sleep(_FIRST_MESSAGE_DELAY)
                await generator.run()

            task = asyncio.create_task(customers_write())
            try:
                yield
            finally:
                task.cancel()
                await asyncio.wait([task])

    return context

"""`fiv-console simulator`: the WhatsApp Cloud API simulator on a port, and customer traffic for a console.

The simulator answers the console's Graph API calls (point WHATSAPP_GRAPH_URL at it) and signs its status
webhooks with WHATSAPP_APP_SECRET; with `--rate` it also posts customer messages to `--console-url`.
With `--duration` it stops after that many seconds, else at Ctrl-C or SIGTERM; either way in order
(traffic stops, pending webhooks are cancelled, the server closes) and with one summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fiv_console.constants import DEMO_DISPLAY_NUMBER, DEMO_PHONE_NUMBER_ID, SIMULATOR_PORT
from fiv_console.serving import run_async
from fiv_console.settings import Settings
from fiv_console.simulation.cloud_api import GraphSimulator, SimulatorConfig, SimulatorServer
from fiv_console.simulation.traffic import TrafficConfig, TrafficGenerator, TrafficStats


@dataclass(frozen=True, slots=True)
class SimulatorOptions:
    app_secret: bytes
    console_url: str
    host: str = "127.0.0.1"
    port: int = SIMULATOR_PORT
    phone_number_id: str = DEMO_PHONE_NUMBER_ID
    display_number: str = DEMO_DISPLAY_NUMBER
    rate: float | None = None  # customer messages per second; None: no traffic
    customers: int = 20
    duration: float | None = None  # seconds; None: until a signal
    seed: int | None = None


def run_simulator(settings: Settings, args: argparse.Namespace) -> int:
    """The `simulator` command (its arguments: `cli.add_simulator_arguments`)."""
    if settings.whatsapp_app_secret is None:
        print("fiv-console: error: WHATSAPP_APP_SECRET must be set: it signs the webhooks", file=sys.stderr)
        return 2
    options = SimulatorOptions(
        app_secret=settings.whatsapp_app_secret.get_secret_value().encode(),
        console_url=args.console_url,
        host=args.host,
        port=args.port,
        phone_number_id=args.phone_number_id,
        display_number=args.display_number,
        rate=args.rate,
        customers=args.customers,
        duration=args.duration or None,
        seed=args.seed,
    )
    try:
        run_async(lambda: serve_simulator(options, report=lambda line: print(line, flush=True)))
    except OSError as exc:  # the port is taken, the address is not ours...
        print(f"fiv-console: error: simulator: {exc}", file=sys.stderr)
        return 1
    return 0


async def serve_simulator(options: SimulatorOptions, *, report: Callable[[str], None]) -> TrafficStats | None:
    """Serve the simulator (and post traffic) until the duration is over or SIGINT/SIGTERM comes."""
    display_digits = "".join(character for character in options.display_number if character.isdigit())
    config = SimulatorConfig(
        app_secret=options.app_secret,
        console_url=options.console_url,
        display_numbers={options.phone_number_id: display_digits},
        seed=options.seed,
    )
    async with SimulatorServer(config, host=options.host, port=options.port) as server:
        report(f"WhatsApp simulator at {server.graph_url} (WHATSAPP_GRAPH_URL); webhooks to {options.console_url}")
        generator = None
        if options.rate is not None:
            traffic = TrafficConfig(
                webhook_url=options.console_url,
                app_secret=options.app_secret,
                phone_number_id=options.phone_number_id,
                display_number=display_digits,
                rate=options.rate,
                customers=options.customers,
                duration=options.duration,
                seed=options.seed,
            )
            generator = TrafficGenerator(traffic, counterpart=server.simulator)
        with _stop_on_signals() as stopped:
            await _run_until_stopped(generator, options.duration, stopped)
        stats = generator.stats if generator is not None else None
        report(_summary(server.simulator, stats))
    return stats


async def _run_until_stopped(
    generator: TrafficGenerator | None, duration: float | None, stopped: asyncio.Event
) -> None:
    """The traffic to its end (or the duration, without traffic), or less if a signal comes first."""
    tasks: list[asyncio.Task[object]] = [asyncio.create_task(stopped.wait())]
    if generator is not None:
        tasks.append(asyncio.create_task(generator.run()))
    elif duration is not None:
        tasks.append(asyncio.create_task(asyncio.sleep(duration)))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        # `wait` rather than `gather`: a cancellation of this coroutine itself must not be swallowed.
        await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled() and (exc := task.exception()) is not None:
            raise exc


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM while inside; the handlers before are put back after."""
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    caught = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.getsignal(signum) for signum in caught}
    installed: list[signal.Signals] = []
    for signum in caught:
        with contextlib.suppress(NotImplementedError):  # no loop signal handlers on Windows: Ctrl-C raises
            loop.add_signal_handler(signum, stopped.set)
            installed.append(signum)
    try:
        yield stopped
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
            signal.signal(signum, previous[signum])


def _summary(simulator: GraphSimulator, stats: TrafficStats | None) -> str:
    delivered = sum(1 for delivery in simulator.webhooks if delivery.answer_status == 200)
    line = (
        f"simulator: {len(simulator.sent)} sends, {len(simulator.read_marks)} read marks, "
        f"{len(simulator.uploads)} uploads, {len(simulator.rejections)} refused, "
        f"{delivered} of {len(simulator.webhooks)} status webhook posts acknowledged"
    )
    return line if stats is None else f"{stats.summary()}; {line}"

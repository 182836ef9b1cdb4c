"""The `fiv-console` command line: serve, demo, migrate and the tenant/user/queue/channel admin commands.

Errors go to stderr as one line with a non-zero exit code: 2 for usage and configuration, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from uuid import UUID

import aiohttp
import asyncpg
import orjson
from pydantic import BaseModel, SecretStr, ValidationError

from fiv_console.accounts import tenant_data, tenant_media, tenants, users
from fiv_console.accounts.passwords import hash_password_async
from fiv_console.app import create_app
from fiv_console.constants import DEMO_DISPLAY_NUMBER, DEMO_PHONE_NUMBER_ID, SIMULATOR_PORT
from fiv_console.db.embedded import EmbeddedPostgresError
from fiv_console.db.migrations import MigrationError, schema_versions
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.db.roles import RoleError
from fiv_console.db.startup import StartupError, close_server_database, open_server_database
from fiv_console.db.urls import owner_url
from fiv_console.errors import DomainError, NotFound
from fiv_console.messages import dead_letters
from fiv_console.observability.logging import configure_logging
from fiv_console.routing import channels, queues
from fiv_console.serving import (
    database_for,
    free_port,
    install_sigterm_handler,
    run_async,
    serve,
    with_demo_whatsapp,
    with_secret_key,
)
from fiv_console.settings import ConfigError, Settings, load_settings
from fiv_console.whatsapp.client import GraphClient, RetryPolicy

if TYPE_CHECKING:
    from fiv_console.simulation.demo_seed import DemoTenant

PROGRAM = "fiv-console"
DEFAULT_CONSOLE_URL = "http://127.0.0.1:8080/webhooks/whatsapp"


class UsageError(Exception):
    """A command-line argument is wrong (exit code 2)."""


def _fail(message: str, code: int) -> int:
    print(f"{PROGRAM}: error: {message}", file=sys.stderr)
    return code


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "input"
    return f"--{field.replace('_', '-')}: {first['msg'].removeprefix('Value error, ')}"


def _tenant_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise UsageError("--tenant: must be a tenant id, as printed by `tenant create`") from None


def _password(value: str) -> str:
    """`-` reads the password from standard input, keeping it out of the process list."""
    return sys.stdin.readline().rstrip("\n") if value == "-" else value


def _print_created(kind: str, record: BaseModel, as_json: bool) -> None:
    if as_json:
        print(orjson.dumps(record.model_dump(mode="json")).decode())
    else:
        print(f"created {kind} {record.model_dump(mode='json')['id']}")


async def _with_database(settings: Settings, work: Callable[[Database], Awaitable[None]]) -> None:
    db = await open_server_database(settings, min_size=1, max_size=2)
    try:
        await work(db)
    finally:
        await close_server_database(db)


async def _require_tenant(db: Database, tenant_id: UUID) -> None:
    async with tenant_tx(db, tenant_id) as conn:
        if await tenants.get_tenant(conn, tenant_id=tenant_id) is None:
            raise NotFound(f"no tenant {tenant_id}")


def _address(settings: Settings, args: argparse.Namespace) -> tuple[str, int]:
    """Flags over HOST/PORT; `--port 0` (any free port) is a real choice, not "unset"."""
    return (
        args.host if args.host is not None else settings.host,
        args.port if args.port is not None else settings.port,
    )


# --- commands -----------------------------------------------------------------------------------------


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    host, port = _address(settings, args)
    settings = with_secret_key(settings)
    with database_for(settings, migrate=args.migrate) as ready:
        serve(
            create_app(ready),
            host=host,
            port=port,
            on_ready=lambda url: print(f"serving on {url}", flush=True),
        )
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    # The demo's pieces (seed, simulator, traffic) load only for the commands that run them.
    from fiv_console.simulation import demo_seed
    from fiv_console.simulation.demo_traffic import demo_traffic

    host, port = _address(settings, args)
    # The simulator's status webhooks and the customers need the console's address before it listens.
    port = port or free_port(host)
    simulator_port = free_port(host)
    settings = with_secret_key(settings, demo=True)
    settings = with_demo_whatsapp(settings, graph_url=f"http://{host}:{simulator_port}/v23.0")
    assert settings.whatsapp_app_secret is not None
    with database_for(settings, migrate=True) as ready:
        seeded = run_async(lambda: _seed_demo(ready))

        def banner(url: str) -> None:
            lines = [
                f"Fi.V Console demo is running at {url}",
                f"  workspace {seeded.workspace} (tenant {seeded.tenant_id}); sign in as:",
            ]
            lines += [f"  {login.role:<10} {login.email:<30} {login.password}" for login in demo_seed.DEMO_LOGINS]
            lines.append(f"Simulated customers write every few seconds (WhatsApp simulator on port {simulator_port}).")
            lines.append("Press Ctrl-C to stop.")
            print("\n".join(lines), flush=True)

        app = create_app(ready)
        app.cleanup_ctx.append(
            demo_traffic(
                app_secret=settings.whatsapp_app_secret.get_secret_value().encode(),
                simulator_port=simulator_port,
                webhook_url=f"http://{host}:{port}/webhooks/whatsapp",
            )
        )
        serve(app, host=host, port=port, on_ready=banner)
    return 0


async def _seed_demo(settings: Settings) -> DemoTenant:
    from fiv_console.simulation.demo_seed import seed_demo

    result: list[DemoTenant] = []

    async def work(db: Database) -> None:
        result.append(await seed_demo(db))

    await _with_database(settings, work)
    return result[0]


def cmd_simulator(settings: Settings, args: argparse.Namespace) -> int:
    from fiv_console.simulation.command import run_simulator

    return run_simulator(settings, args)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    # database_for migrates as it starts; with a configured database it is asked to.
    applied: list[str] = []
    with database_for(settings, migrate=True, on_migrated=lambda done: applied.extend(m.file_name for m in done)):
        pass
    if applied:
        print(f"applied {len(applied)} migration{'s' if len(applied) > 1 else ''}: {', '.join(applied)}")
    else:
        print("the schema is up to date: nothing to apply")
    return 0


def _admin(settings: Settings, work: Callable[[Database], Awaitable[None]]) -> int:
    with database_for(settings, migrate=False) as ready:
        run_async(lambda: _with_database(ready, work))
    return 0


def cmd_tenant_create(settings: Settings, args: argparse.Namespace) -> int:
    data = tenants.TenantCreate(name=args.name, slug=args.slug, time_zone=args.time_zone)

    async def work(db: Database) -> None:
        tenant = await tenants.create_tenant(db, data)
        if args.json:
            _print_created("tenant", tenant, as_json=True)
        else:
            # The workspace is what its people type when they sign in: the operator passes it on.
            print(f"created tenant {tenant.id} workspace {tenant.slug}")

    return _admin(settings, work)


async def _fetch_media(
    settings: Settings, references: tenant_media.MediaReferences, out: Path
) -> tenant_media.FetchSummary:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        client = GraphClient(
            session, settings.whatsapp_graph_url, retry=RetryPolicy(total_time=settings.whatsapp_send_timeout)
        )
        return await tenant_media.fetch_all(client, references, out, max_bytes=settings.media_max_bytes)


def _write_manifest(out: Path, document: dict[str, Any]) -> None:
    """`manifest.json`, whole or not at all: a folder without one is an export that did not finish."""
    path = out / "manifest.json"
    try:
        path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        raise tenant_data.ExportFolderUnwritable(out, exc) from exc


def cmd_tenant_export(settings: Settings, args: argparse.Namespace) -> int:
    tenant_id = _tenant_id(args.tenant)
    out: Path = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out: {out} must be a folder that does not exist yet, or an empty one")

    async def work(db: Database) -> None:
        await _require_tenant(db, tenant_id)
        await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
        with tenant_media.spooled_references() as references:
            async with tenant_data.export_snapshot(db, tenant_id) as conn:
                counts: dict[str, int] = {}
                async for table in tenant_data.export_tables(conn, tenant_id=tenant_id):
                    counts[table.table] = await tenant_data.write_table(table, out)
                version, _ = await schema_versions(conn)
                if args.media == "fetch":
                    await tenant_media.read_references(conn, tenant_id=tenant_id, into=references)
            media = None
            if args.media == "fetch":
                # After the snapshot's transaction: downloads take long, and hold no database connection.
                summary = await _fetch_media(settings, references, out)
                media = summary.manifest()
        document = tenant_data.manifest(tenant_id=tenant_id, counts=counts, schema_version=version, media=media)
        _write_manifest(out, document)
        if media is not None and summary.stopped is not None:
            # The tables and the files fetched so far stay, and the manifest says the media are incomplete.
            raise summary.stopped
        print(f"exported tenant {tenant_id} into {out}: {sum(counts.values())} rows in {len(counts)} tables")
        if media is not None:
            missing = sum(summary.failed.values())
            print(f"media: {summary.fetched} files fetched, {missing} not (their reasons are in media.jsonl)")

    return _admin(settings, work)


def cmd_tenant_delete(settings: Settings, args: argparse.Namespace) -> int:
    tenant_id = _tenant_id(args.tenant)

    async def work(db: Database) -> None:
        async with tenant_tx(db, tenant_id) as conn:
            tenant = await tenants.get_tenant(conn, tenant_id=tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant {tenant_id}")
        if not args.yes:
            _confirm_deletion(tenant.slug, tenant.name)
        # As the schema owner: the server's role may delete no tenant, nor any audit log.
        owner = await asyncpg.connect(owner_url(settings))
        try:
            async with owner.transaction():
                await tenant_data.delete_tenant(owner, tenant_id=tenant_id)
        finally:
            await owner.close()
        print(f"deleted tenant {tenant_id} (workspace {tenant.slug}) and every row of it")

    return _admin(settings, work)


def _confirm_deletion(slug: str, name: str) -> None:
    """Asks for the workspace to be typed back; without a terminal to ask on, --yes is needed."""
    if not sys.stdin.isatty():
        raise UsageError("tenant delete: standard input is not a terminal to confirm on; pass --yes to delete anyway")
    answer = input(f"Delete {name} (workspace {slug}) and every row of it, for good? Type the workspace to confirm: ")
    if answer.strip() != slug:
        raise UsageError("tenant delete: not confirmed; nothing was deleted")


def cmd_user_create(settings: Settings, args: argparse.Namespace) -> int:
    tenant_id = _tenant_id(args.tenant)
    data = users.UserCreate(
        email=args.email,
        name=args.name,
        role=args.role,
        password=SecretStr(_password(args.password)),
        max_concurrent=args.max_concurrent,
    )

    async def work(db: Database) -> None:
        await _require_tenant(db, tenant_id)
        password_hash = await hash_password_async(data.password.get_secret_value())
        async with tenant_tx(db, tenant_id) as conn:
            member_of = [await queues.find_queue(conn, reference=ref) for ref in args.queue]
            user = await users.create_user(conn, tenant_id=tenant_id, data=data, password_hash=password_hash)
            for queue in member_of:
                await queues.add_member(conn, tenant_id=tenant_id, queue_id=queue.id, user_id=user.id)
        _print_created("user", user, args.json)

    return _admin(settings, work)


def cmd_queue_create(settings: Settings, args: argparse.Namespace) -> int:
    tenant_id = _tenant_id(args.tenant)
    data = queues.QueueCreate(name=args.name, priority=args.priority, sla_seconds=args.sla_seconds)

    async def work(db: Database) -> None:
        await _require_tenant(db, tenant_id)
        async with tenant_tx(db, tenant_id) as conn:
            queue = await queues.create_queue(conn, tenant_id=tenant_id, data=data)
        _print_created("queue", queue, args.json)

    return _admin(settings, work)


def cmd_channel_create(settings: Settings, args: argparse.Namespace) -> int:
    tenant_id = _tenant_id(args.tenant)

    async def work(db: Database) -> None:
        await _require_tenant(db, tenant_id)
        async with tenant_tx(db, tenant_id) as conn:
            queue = await queues.find_queue(conn, reference=args.queue)
            data = channels.ChannelCreate(
                phone_number_id=args.phone_number_id,
                display_number=args.display_number,
                default_queue_id=queue.id,
                access_token=SecretStr(args.access_token) if args.access_token else None,
                waba_id=args.waba_id,
            )
            channel = await channels.create_channel(conn, tenant_id=tenant_id, data=data)
        _print_created("channel", channel, args.json)

    return _admin(settings, work)


def cmd_dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    """The newest webhook dead letters, one JSON object a line, read as the schema owner."""

    async def show(url: str) -> None:
        owner = await asyncpg.connect(url)
        try:
            letters = await dead_letters.latest(owner, limit=args.limit)
        finally:
            await owner.close()
        for letter in letters:
            record = dataclasses.asdict(letter)
            record["body"] = letter.body.decode("utf-8", errors="replace")
            print(orjson.dumps(record).decode())

    with database_for(settings, migrate=False) as ready:
        run_async(lambda: show(owner_url(ready)))
    return 0


# --- parser -------------------------------------------------------------------------------------------


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage before an error; one clear line, with where to look, serves better."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROGRAM}: error: {message} (see {self.prog} --help)\n")


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, not {text}")
        return value

    return parse


def _not_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {text}")
    return value


def add_simulator_arguments(parser: argparse.ArgumentParser) -> None:
    """The `simulator` command's options."""
    parser.add_argument(
        "--console-url",
        default=DEFAULT_CONSOLE_URL,
        help=f"the console's webhook URL, for status webhooks and traffic (default {DEFAULT_CONSOLE_URL})",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=SIMULATOR_PORT, help=f"port to listen on (default {SIMULATOR_PORT})"
    )
    parser.add_argument("--rate", type=_positive(float), help="customer messages per second (default: no traffic)")
    parser.add_argument("--customers", type=_positive(int), default=20, help="customers writing (default 20)")
    parser.add_argument(
        "--duration", type=_not_negative, default=0.0, help="seconds to run, then stop (default 0: until Ctrl-C)"
    )
    parser.add_argument(
        "--phone-number-id",
        default=DEMO_PHONE_NUMBER_ID,
        help=f"the channel's phone number id (default the demo's, {DEMO_PHONE_NUMBER_ID})",
    )
    parser.add_argument(
        "--display-number", default=DEMO_DISPLAY_NUMBER, help=f"its display number (default {DEMO_DISPLAY_NUMBER})"
    )
    parser.add_argument("--seed", type=int, help="seed for the traffic's customers and mix")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=PROGRAM, description="Fi.V Console: WhatsApp customer-service console.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_OneLineParser)

    serve_cmd = commands.add_parser("serve", help="run the server")
    serve_cmd.add_argument("--host", help="address to listen on (HOST; default 127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, help="port to listen on (PORT; default 8080)")
    serve_cmd.add_argument("--migrate", action="store_true", help="apply pending migrations first")
    serve_cmd.set_defaults(handler=cmd_serve)

    demo_cmd = commands.add_parser("demo", help="run the console with a seeded demo tenant")
    demo_cmd.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    demo_cmd.add_argument("--port", type=int, help="port to listen on (default 8080)")
    demo_cmd.set_defaults(handler=cmd_demo)

    commands.add_parser("migrate", help="apply sql/ migrations").set_defaults(handler=cmd_migrate)

    actions: dict[str, argparse._SubParsersAction[_OneLineParser]] = {}

    def group(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions[name] = commands.add_parser(name, help=help_text).add_subparsers(
            dest="action", required=True, metavar="ACTION", parser_class=_OneLineParser
        )
        create = sub.add_parser("create", help=f"create a {name}")
        create.add_argument("--json", action="store_true", help="print the new record as one JSON object")
        return create

    tenant = group("tenant", "manage tenants")
    tenant.add_argument("--name", required=True)
    tenant.add_argument(
        "--slug",
        help="the workspace people type to sign in: lower-case letters, digits and hyphens "
        "(default: made from the name)",
    )
    tenant.add_argument("--time-zone", default="UTC", help="IANA time zone (default UTC)")
    tenant.set_defaults(handler=cmd_tenant_create)
    export = actions["tenant"].add_parser("export", help="write every row of a tenant as JSON lines into a folder")
    export.add_argument("--tenant", required=True, help="tenant id")
    export.add_argument("--out", required=True, type=Path, help="a folder that does not exist yet, or is empty")
    export.add_argument(
        "--media",
        choices=("reference", "fetch"),
        default="reference",
        help="reference (the default): messages carry their media ids, the files stay with Meta; fetch: the "
        "files are downloaded from WhatsApp into OUT/media/, and OUT/media.jsonl says which could not be",
    )
    export.set_defaults(handler=cmd_tenant_export)
    delete = actions["tenant"].add_parser("delete", help="delete a tenant and every row of it")
    delete.add_argument("--tenant", required=True, help="tenant id")
    delete.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    delete.set_defaults(handler=cmd_tenant_delete)

    user = group("user", "manage users")
    user.add_argument("--tenant", required=True, help="tenant id")
    user.add_argument("--email", required=True)
    user.add_argument("--name", required=True)
    user.add_argument("--role", required=True, choices=users.ROLES)
    user.add_argument("--password", required=True, help="the password, or - to read it from standard input")
    user.add_argument("--max-concurrent", type=int, default=3, help="open conversations at once (default 3)")
    user.add_argument("--queue", action="append", default=[], help="queue id or name to join (repeatable)")
    user.set_defaults(handler=cmd_user_create)

    queue = group("queue", "manage queues")
    queue.add_argument("--tenant", required=True, help="tenant id")
    queue.add_argument("--name", required=True)
    queue.add_argument("--priority", type=int, default=0, help="higher is served first (default 0)")
    queue.add_argument("--sla-seconds", type=int, default=300, help="target wait (default 300)")
    queue.set_defaults(handler=cmd_queue_create)

    channel = group("channel", "manage WhatsApp channels")
    channel.add_argument("--tenant", required=True, help="tenant id")
    channel.add_argument("--phone-number-id", required=True, help="Meta's phone number id")
    channel.add_argument("--display-number", required=True)
    channel.add_argument("--queue", required=True, help="default queue id or name")
    channel.add_argument("--access-token", help="Graph API access token for this number")
    channel.add_argument("--waba-id", help="the WhatsApp Business Account id whose templates the number sends")
    channel.set_defaults(handler=cmd_channel_create)

    letters = commands.add_parser(
        "dead-letters", help="show signed webhooks no tenant could take (unknown numbers, unreadable bodies)"
    )
    letters.add_argument("--limit", type=int, default=20, help="how many, newest first (default 20)")
    letters.set_defaults(handler=cmd_dead_letters)

    simulator_cmd = commands.add_parser("simulator", help="the WhatsApp Cloud API simulator and traffic generator")
    add_simulator_arguments(simulator_cmd)
    simulator_cmd.set_defaults(handler=cmd_simulator)
    return parser


# Commands that keep running and are watched by a person or a log system, not run for their result.
_RUNNING_COMMANDS = (cmd_serve, cmd_demo, cmd_simulator)


def log_format_for(
    settings: Settings, *, command: Callable[[Settings, argparse.Namespace], int], at_terminal: bool
) -> str:
    """LOG_FORMAT when set; else text for a person at a terminal, except under `serve`, which is what runs in
    production and feeds a log system (a terminal there is usually a container's)."""
    if settings.log_format is not None:
        return settings.log_format
    return "text" if at_terminal and command is not cmd_serve else "json"


def _log_level_for(settings: Settings, *, command: Callable[[Settings, argparse.Namespace], int], text: bool) -> str:
    """An admin command at a terminal prints its result; its progress lines show only when LOG_LEVEL asks."""
    if text and command not in _RUNNING_COMMANDS and "log_level" not in settings.model_fields_set:
        return "WARNING"
    return settings.log_level


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        return _fail(f"configuration: {exc}", 2)
    handler: Callable[[Settings, argparse.Namespace], int] = args.handler
    text = log_format_for(settings, command=handler, at_terminal=sys.stderr.isatty()) == "text"
    configure_logging(_log_level_for(settings, command=handler, text=text), text=text)
    install_sigterm_handler()
    try:
        return handler(settings, args)
    except UsageError as exc:
        return _fail(str(exc), 2)
    except ValidationError as exc:
        return _fail(_validation_message(exc), 2)
    except (DomainError, MigrationError, RoleError, StartupError, EmbeddedPostgresError) as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return 130
    except (OSError, asyncpg.PostgresError) as exc:
        return _fail(f"database: {exc}", 1)

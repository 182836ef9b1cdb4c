"""The command line, run for real as `python -m fiv_console` against the session's database.

Admin commands print the new record (`--json`: one JSON object with its `id`); every error is one line on
stderr with exit code 2 (usage, configuration) or 1 (everything else), never a traceback. `serve` refuses
a database that needs `migrate` and a server role that row-level security would not hold.

Each command costs a Python start-up (about a second), so independent commands run side by side.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from pydantic import SecretStr

from fiv_console.accounts.passwords import hash_password, verify_password
from fiv_console.accounts.tenants import get_tenant
from fiv_console.accounts.users import UserCreate, create_user
from fiv_console.cli import cmd_demo, cmd_migrate, cmd_serve, log_format_for
from fiv_console.db.embedded import embedded_postgres
from fiv_console.db.pool import Database, tenant_tx
from fiv_console.routing.queues import QueueCreate, create_queue
from fiv_console.serving import free_port, public_url_warning
from fiv_console.settings import Settings
from tests.conftest import TestDatabase, new_tenant, project_root

CLI_TIMEOUT_SECONDS = 60.0
ERROR_PREFIX = "fiv-console: error: "
# Variables of the outer environment that would change what the command line connects to.
_OUTER_VARIABLES = (
    "DATABASE_URL",
    "DATABASE_APP_URL",
    "REDIS_URL",
    "HOST",
    "PORT",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "FIV_DATA_DIR",
    "SECRET_KEY",
)

Option = str | bool | list[str]


def cli_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key.upper() not in _OUTER_VARIABLES}
    env.update(DATABASE_URL=database_url, LOG_LEVEL="WARNING", SECRET_KEY="cli-test-secret-key-0123456789")
    env.update(extra)
    return env


def phone_number_id() -> str:
    return "1555" + "".join(secrets.choice("0123456789") for _ in range(11))


def new_email(label: str = "user") -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}@example.com"


def opts(**options: Option) -> list[str]:
    """`time_zone="UTC"` → `--time-zone UTC`; `json=True` → `--json`; a list repeats the option."""
    args: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif isinstance(value, list):
            for item in value:
                args += [flag, item]
        elif value is not False:
            args += [flag, value]
    return args


@dataclass(frozen=True)
class Result:
    args: list[str]
    code: int
    stdout: str
    stderr: str

    def created(self) -> dict[str, Any]:
        """The `--json` record: exactly one line, one JSON object with an id."""
        assert self.code == 0, self
        lines = self.stdout.splitlines()
        assert len(lines) == 1, self
        record = orjson.loads(lines[0])
        assert isinstance(record, dict), self
        uuid.UUID(record["id"])
        return record

    def error(self, code: int) -> str:
        """The one stderr line of a failed command, without the program prefix."""
        assert self.code == code, self
        assert self.stdout == "", self
        assert "Traceback" not in self.stderr, self
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self
        assert lines[0].startswith(ERROR_PREFIX), self
        return lines[0].removeprefix(ERROR_PREFIX)


# Starts the command under a limit on the size of any file it writes: past it a write fails with EFBIG (Python
# ignores SIGXFSZ), as on a full disk, whoever runs the tests, root too.
_UNDER_FILE_SIZE_LIMIT = (
    "import os, resource, sys; limit = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)); "
    "os.execv(sys.executable, [sys.executable, '-m', 'fiv_console', *sys.argv[2:]])"
)


async def cli(*args: str, env: dict[str, str], stdin: str = "", max_file_bytes: int | None = None) -> Result:
    command = ["-m", "fiv_console"] if max_file_bytes is None else ["-c", _UNDER_FILE_SIZE_LIMIT, str(max_file_bytes)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *command,
        *args,
        env=env,
        cwd=project_root(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(CLI_TIMEOUT_SECONDS):
            out, err = await proc.communicate(stdin.encode())
    except TimeoutError:
        proc.kill()
        await proc.communicate()
        raise AssertionError(f"fiv-console {args} did not finish within {CLI_TIMEOUT_SECONDS}s") from None
    assert proc.returncode is not None
    return Result(args=list(args), code=proc.returncode, stdout=out.decode(), stderr=err.decode())


@pytest.fixture
def env(database: TestDatabase) -> dict[str, str]:
    return cli_env(database.owner_url)


async def new_queue(db: Database, tenant_id: uuid.UUID, name: str) -> uuid.UUID:
    async with tenant_tx(db, tenant_id) as conn:
        return (await create_queue(conn, tenant_id=tenant_id, data=QueueCreate(name=name))).id


# --- create commands ---------------------------------------------------------------------------------


async def test_tenant_create_prints_the_new_tenant(env: dict[str, str], db: Database) -> None:
    chosen = f"acme-{uuid.uuid4().hex[:8]}"
    as_json, as_text = await asyncio.gather(
        cli(
            "tenant",
            "create",
            *opts(name="  Acme Lisbon ", slug=chosen.upper(), time_zone="Europe/Lisbon", json=True),
            env=env,
        ),
        cli("tenant", "create", *opts(name="Plain Text"), env=env),
    )
    record = as_json.created()
    assert (record["name"], record["slug"], record["time_zone"]) == ("Acme Lisbon", chosen, "Europe/Lisbon")
    assert as_json.stderr == ""
    assert as_text.code == 0, as_text
    words = as_text.stdout.split()
    assert words[:2] == ["created", "tenant"], as_text
    # The workspace (made from the name, numbered where taken) is printed for people to sign in with.
    assert len(words) == 5, as_text
    assert words[3] == "workspace", as_text
    assert re.fullmatch(r"plain-text(-[0-9a-f]+)?", words[4]), as_text

    for tenant_id, name, slug, zone in (
        (uuid.UUID(record["id"]), "Acme Lisbon", chosen, "Europe/Lisbon"),
        (uuid.UUID(words[2]), "Plain Text", words[4], "UTC"),
    ):
        async with tenant_tx(db, tenant_id) as conn:
            tenant = await get_tenant(conn, tenant_id=tenant_id)
        assert tenant is not None
        assert (tenant.name, tenant.slug, tenant.time_zone) == (name, slug, zone)


async def test_a_workspace_is_made_unique_or_refused_when_chosen(env: dict[str, str]) -> None:
    name = f"Same Name {uuid.uuid4().hex[:6]}"
    first = (await cli("tenant", "create", *opts(name=name, json=True), env=env)).created()
    second = (await cli("tenant", "create", *opts(name=name, json=True), env=env)).created()
    base = name.lower().replace(" ", "-")
    assert (first["slug"], second["slug"]) == (base, f"{base}-2")

    taken, malformed = await asyncio.gather(
        cli("tenant", "create", *opts(name="Other", slug=base), env=env),
        cli("tenant", "create", *opts(name="Other", slug="no spaces"), env=env),
    )
    assert taken.error(1) == f"the workspace {base} is taken: choose another with --slug"
    assert malformed.error(2).startswith("--slug: must be 1 to 40 lower-case letters, digits and hyphens")


async def test_queue_user_and_channel_create_print_ids_of_rows_that_exist(env: dict[str, str], db: Database) -> None:
    tenant = str(await new_tenant(db))
    support_run, sales_run = await asyncio.gather(
        cli("queue", "create", *opts(tenant=tenant, name="Support", priority="5", json=True), env=env),
        cli("queue", "create", *opts(tenant=tenant, name="Sales", sla_seconds="120", json=True), env=env),
    )
    support, sales = support_run.created(), sales_run.created()
    assert (support["name"], support["priority"], support["sla_seconds"]) == ("Support", 5, 300)
    assert (sales["name"], sales["priority"], sales["sla_seconds"]) == ("Sales", 0, 120)

    email, token, number = new_email("agent"), f"EAAG-token-{uuid.uuid4().hex}", phone_number_id()
    user_run, channel_run = await asyncio.gather(
        cli(
            "user", "create", *opts(tenant=tenant, email=email.upper(), name="Ana Agent", role="agent",
            password="correct horse battery", max_concurrent="5", queue=["SUPPORT", sales["id"]], json=True),
            env=env,
        ),
        cli(
            "channel", "create", *opts(tenant=tenant, phone_number_id=number, display_number="+1 555 0100",
            queue="support", access_token=token, json=True),
            env=env,
        ),
    )  # fmt: skip
    user = user_run.created()
    assert (user["email"], user["role"], user["max_concurrent"]) == (email, "agent", 5)
    assert "password" not in user_run.stdout
    assert "correct horse battery" not in user_run.stdout
    channel = channel_run.created()
    assert (channel["phone_number_id"], channel["default_queue_id"]) == (number, support["id"])
    assert "access_token" not in channel
    assert token not in channel_run.stdout

    async with tenant_tx(db, uuid.UUID(tenant)) as conn:
        queue_rows = await conn.fetch("select id, name from queues order by name")
        user_row = await conn.fetchrow("select * from users where id = $1", uuid.UUID(user["id"]))
        members = await conn.fetch("select queue_id from queue_members where user_id = $1", uuid.UUID(user["id"]))
        channel_row = await conn.fetchrow("select * from channels where id = $1", uuid.UUID(channel["id"]))
    assert user_row is not None
    assert channel_row is not None
    assert [(str(r["id"]), r["name"]) for r in queue_rows] == [(sales["id"], "Sales"), (support["id"], "Support")]
    assert (user_row["email"], user_row["name"], user_row["max_concurrent"]) == (email, "Ana Agent", 5)
    assert verify_password(user_row["password_hash"], "correct horse battery")
    assert sorted(str(m["queue_id"]) for m in members) == sorted([support["id"], sales["id"]])
    assert (channel_row["phone_number_id"], channel_row["access_token"]) == (number, token)
    assert str(channel_row["default_queue_id"]) == support["id"]


async def test_password_dash_reads_standard_input(env: dict[str, str], db: Database) -> None:
    tenant = str(await new_tenant(db))
    user: dict[str, Option] = {"tenant": tenant, "name": "In Put", "role": "admin", "password": "-"}
    typed, empty = await asyncio.gather(
        cli("user", "create", *opts(**user, email=new_email(), json=True), env=env, stdin="from standard input\n"),
        cli("user", "create", *opts(**user, email=new_email()), env=env, stdin=""),
    )
    user_id = uuid.UUID(typed.created()["id"])
    assert empty.error(2).startswith("--password:")

    async with tenant_tx(db, uuid.UUID(tenant)) as conn:
        password_hash = await conn.fetchval("select password_hash from users where id = $1", user_id)
        assert await conn.fetchval("select count(*) from users") == 1
    assert verify_password(password_hash, "from standard input")


# --- refused creates ---------------------------------------------------------------------------------


async def test_a_duplicate_email_is_refused_in_one_line_within_its_tenant_only(
    env: dict[str, str], db: Database, owner: asyncpg.Connection
) -> None:
    tenant, other_tenant = await new_tenant(db), await new_tenant(db)
    email = new_email("dup")
    async with tenant_tx(db, tenant) as conn:
        data = UserCreate(email=email, name="First", role="agent", password=SecretStr("long enough"))
        first = await create_user(conn, tenant_id=tenant, data=data, password_hash=hash_password("long enough"))

    user: dict[str, Option] = {"name": "Dup", "role": "agent", "password": "long enough", "json": True}
    # Emails are unique per tenant, whatever their case; another tenant may have the same address.
    same, same_other_case, other_tenants = await asyncio.gather(
        cli("user", "create", *opts(tenant=str(tenant), email=email, **user), env=env),
        cli("user", "create", *opts(tenant=str(tenant), email=email.upper(), **user), env=env),
        cli("user", "create", *opts(tenant=str(other_tenant), email=email.upper(), **user), env=env),
    )
    for run in (same, same_other_case):
        line = run.error(1)
        assert email in line, run
        assert "already exists in this workspace" in line, run
    theirs = other_tenants.created()
    rows = await owner.fetch("select id, tenant_id, name from users where email = $1 order by created_at", email)
    assert [(r["id"], r["tenant_id"], r["name"]) for r in rows] == [
        (first.id, tenant, "First"),
        (uuid.UUID(theirs["id"]), other_tenant, "Dup"),
    ]


async def test_usage_errors_exit_2_in_one_line(env: dict[str, str], db: Database) -> None:
    tenant = str(await new_tenant(db))
    user: dict[str, Option] = {"name": "N", "role": "agent", "email": new_email()}
    bad_tenant, short_password, bad_email = await asyncio.gather(
        cli("user", "create", *opts(tenant="acme", password="long enough", **user), env=env),
        cli("user", "create", *opts(tenant=tenant, password="abc1234", **user), env=env),
        cli("user", "create", *opts(tenant=tenant, password="long enough", **{**user, "email": "nobody"}), env=env),
    )
    assert bad_tenant.error(2).startswith("--tenant:")
    assert short_password.error(2).startswith("--password:")
    assert "abc1234" not in short_password.stderr
    assert bad_email.error(2).startswith("--email:")
    async with tenant_tx(db, uuid.UUID(tenant)) as conn:
        assert await conn.fetchval("select count(*) from users") == 0


async def test_an_unknown_tenant_exits_1(env: dict[str, str]) -> None:
    nobody = str(uuid.uuid4())
    run = await cli("queue", "create", *opts(tenant=nobody, name="Q"), env=env)
    assert run.error(1) == f"no tenant {nobody}"


async def test_an_unknown_queue_exits_1_and_creates_nothing(env: dict[str, str], db: Database) -> None:
    tenant = await new_tenant(db)
    theirs = await new_queue(db, await new_tenant(db), "Theirs")
    user: dict[str, Option] = {"tenant": str(tenant), "name": "N", "role": "agent", "password": "long enough"}
    by_name, by_foreign_id, channel = await asyncio.gather(
        cli("user", "create", *opts(**user, email=new_email(), queue=["nope"]), env=env),
        cli("user", "create", *opts(**user, email=new_email(), queue=[str(theirs)]), env=env),
        cli("channel", "create", *opts(tenant=str(tenant), phone_number_id=phone_number_id(), display_number="+1",
            queue="Theirs"), env=env),
    )  # fmt: skip
    assert "no queue 'nope'" in by_name.error(1)
    assert f"no queue '{theirs}'" in by_foreign_id.error(1)
    assert "no queue 'Theirs'" in channel.error(1)
    async with tenant_tx(db, tenant) as conn:
        assert await conn.fetchval("select count(*) from users") == 0
        assert await conn.fetchval("select count(*) from channels") == 0


async def test_a_phone_number_id_connects_once_across_tenants(
    env: dict[str, str], db: Database, owner: asyncpg.Connection
) -> None:
    tenants = [await new_tenant(db) for _ in range(2)]
    for tenant in tenants:
        await new_queue(db, tenant, "Main")
    number = phone_number_id()
    channel: dict[str, Option] = {
        "phone_number_id": number,
        "display_number": "+1 555 0101",
        "queue": "main",
        "json": True,
    }

    # Started together (twice in one tenant, once in the other): exactly one connects the number, and the
    # refused ones include one in the other tenant, whichever wins.
    runs = await asyncio.gather(
        cli("channel", "create", *opts(tenant=str(tenants[0]), **channel), env=env),
        cli("channel", "create", *opts(tenant=str(tenants[0]), **channel), env=env),
        cli("channel", "create", *opts(tenant=str(tenants[1]), **channel), env=env),
    )
    created = [run for run in runs if run.code == 0]
    assert len(created) == 1, runs
    record = created[0].created()
    for run in runs:
        if run is not created[0]:
            line = run.error(1)
            assert number in line, run
            assert "already connected" in line, run
    rows = await owner.fetch("select id, tenant_id from channels where phone_number_id = $1", number)
    assert [(str(r["id"]), str(r["tenant_id"])) for r in rows] == [(record["id"], record["tenant_id"])]


# --- serve refuses to start --------------------------------------------------------------------------


async def test_serve_refuses_an_unmigrated_database(database: TestDatabase, fresh_database: TestDatabase) -> None:
    # `database` is migrated, so the cluster-wide fiv_app role exists: only this database's schema is missing.
    run = await cli("serve", *opts(port=str(free_port())), env=cli_env(fresh_database.owner_url))
    line = run.error(1)
    assert "run `fiv-console migrate`" in line
    assert "0000" in line


async def test_serve_refuses_a_superuser_server_role(database: TestDatabase) -> None:
    env = cli_env(database.owner_url, DATABASE_APP_URL=database.owner_url)
    line = (await cli("serve", *opts(port=str(free_port())), env=env)).error(1)
    assert "is a superuser" in line
    assert "row-level security would not hold" in line


async def test_serve_on_a_never_migrated_cluster_says_to_migrate(tmp_path: Path) -> None:
    with embedded_postgres(tmp_path / "cluster") as url:
        line = (await cli("serve", *opts(port=str(free_port())), env=cli_env(url))).error(1)
    assert "fiv-console migrate" in line


async def test_dead_letters_shows_the_newest_unroutable_webhooks(
    env: dict[str, str], owner: asyncpg.Connection
) -> None:
    marker = f"dead-letter-{uuid.uuid4().hex}"
    await owner.execute(
        "insert into webhook_dead_letters (reason, phone_number_id, detail, body) values ('unroutable', '123', $1, $2)",
        marker,
        b'{"object":"whatsapp_business_account","entry":[]}',
    )
    result = await cli("dead-letters", "--limit", "1", env=env)
    assert result.code == 0, result
    [line] = result.stdout.splitlines()
    letter = orjson.loads(line)
    assert (letter["reason"], letter["phone_number_id"], letter["detail"]) == ("unroutable", "123", marker)
    assert letter["body"] == '{"object":"whatsapp_business_account","entry":[]}'


async def test_the_server_loads_no_simulator_unless_it_runs_one() -> None:
    """The simulator, its traffic and the demo are tools: `serve` and the admin commands never load them."""
    script = "from fiv_console import cli\ncli.build_parser().parse_args(['simulator', '--help'])\n"
    check = (
        "import sys\n"
        "from fiv_console import cli\n"
        "from fiv_console.app import create_app\n"
        "from fiv_console.settings import load_settings\n"
        "cli.build_parser().parse_args(['serve'])\n"
        "create_app(load_settings())\n"
        "print(sorted(m for m in sys.modules if m.startswith('fiv_console.simulation')))\n"
    )
    env = cli_env("postgresql://nobody@127.0.0.1:1/none")
    for code, expect in ((check, b"[]"), (script, b"100000000000001")):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            env=env,
            cwd=project_root(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_SECONDS)
        assert process.returncode == 0, err
        assert expect in out  # no simulator module loaded; the simulator's help names the demo's number


# --- what a person at a terminal reads ----------------------------------------------------------------


async def test_migrate_prints_what_it_applied_then_that_nothing_was_left(fresh_database: TestDatabase) -> None:
    env = cli_env(fresh_database.owner_url)
    first = await cli("migrate", env=env)
    assert first.code == 0, first
    (line,) = first.stdout.splitlines()
    assert re.fullmatch(r"applied \d+ migrations: 0001_core_schema\.sql, .*\.sql", line), line
    again = await cli("migrate", env=env)
    assert again.stdout == "the schema is up to date: nothing to apply\n"


async def _at_a_terminal(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """The command with its stderr on a pseudo-terminal (as in a person's shell); stderr's text."""
    import pty

    controller, terminal = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fiv_console", *args, env=env, cwd=project_root(),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=terminal,
    )  # fmt: skip
    os.close(terminal)
    async with asyncio.timeout(CLI_TIMEOUT_SECONDS):
        code = await proc.wait()
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal's other end has closed: everything has been read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return code, b"".join(chunks).decode().replace("\r\n", "\n")


async def test_at_a_terminal_an_admin_command_logs_short_lines_unless_told_json(database: TestDatabase) -> None:
    env = cli_env(database.owner_url, LOG_LEVEL="INFO")
    code, text = await _at_a_terminal("migrate", env=env)
    assert code == 0
    (line,) = text.splitlines()
    assert re.fullmatch(r"\d\d:\d\d:\d\d info +migrations done  applied=\[\]", line), line
    code, text = await _at_a_terminal("migrate", env=cli_env(database.owner_url, LOG_LEVEL="INFO", LOG_FORMAT="json"))
    assert [orjson.loads(line)["msg"] for line in text.splitlines()] == ["migrations done"]


@pytest.mark.parametrize(
    ("command", "at_terminal", "given", "expected"),
    [
        (cmd_demo, True, None, "text"),
        (cmd_migrate, True, None, "text"),
        # `serve` is what production runs, whose terminal is usually a container's: a log system reads it.
        (cmd_serve, True, None, "json"),
        (cmd_demo, False, None, "json"),
        (cmd_serve, True, "text", "text"),
        (cmd_demo, True, "json", "json"),
    ],
)
def test_the_log_format_follows_the_command_and_the_terminal(
    command: Any, at_terminal: bool, given: str | None, expected: str
) -> None:
    settings = Settings.model_validate({"log_format": given})
    assert log_format_for(settings, command=command, at_terminal=at_terminal) == expected


@pytest.mark.parametrize(
    ("host", "public_url", "warned"),
    [
        ("127.0.0.1", None, False),
        ("::1", None, False),
        ("localhost", None, False),
        ("0.0.0.0", None, True),  # noqa: S104 - the address under test, nothing listens on it
        ("192.0.2.10", None, True),
        ("console.internal", None, True),
        ("0.0.0.0", "https://console.example.com", False),  # noqa: S104
    ],
)
def test_listening_beyond_this_machine_without_public_url_is_a_warning(
    host: str, public_url: str | None, warned: bool
) -> None:
    warning = public_url_warning(host, public_url)
    assert (warning is not None) == warned
    if warning is not None:
        assert "PUBLIC_URL" in warning
        assert host in warning

"""The catalog check: row-level security is on and forced everywhere, and the server role cannot bypass it.

These read PostgreSQL's catalog as the owner, so they also catch a table added later without its policy.
"""

from __future__ import annotations

import asyncpg

from fiv_console.db import roles
from fiv_console.db.pool import Database
from fiv_console.db.urls import APP_ROLE

_TENANT_TABLES_SQL = """
select c.relname, c.relrowsecurity, c.relforcerowsecurity
from pg_class c
where c.relnamespace = 'public'::regnamespace
  and c.relkind in ('r', 'p')
  and (exists (select 1 from pg_attribute a
               where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped)
       or c.relname = 'tenants')
order by c.relname
"""

# The reviewed SECURITY DEFINER lookups (docs/architecture.md): nothing else may bypass RLS.
REVIEWED_DEFINER_FUNCTIONS = {
    "api_token_for_hash",
    "channel_for_phone_number",
    "purge_closed_conversations",
    "queues_with_waiting",
    "sole_workspace",
    "tenants_with_events_before",
    "tenants_with_open_conversations",
    "tenants_with_presence",
    "tenants_with_retention",
    "user_for_login",
}


async def test_every_tenant_table_has_rls_enabled_and_forced(owner: asyncpg.Connection) -> None:
    rows = await owner.fetch(_TENANT_TABLES_SQL)
    assert len(rows) >= 11, [r["relname"] for r in rows]
    unprotected = [r["relname"] for r in rows if not (r["relrowsecurity"] and r["relforcerowsecurity"])]
    assert unprotected == []


async def test_every_tenant_table_has_one_tenant_policy_for_reads_and_writes(
    owner: asyncpg.Connection,
) -> None:
    tables = [r["relname"] for r in await owner.fetch(_TENANT_TABLES_SQL)]
    policies = await owner.fetch(
        """
        select tablename, policyname, permissive, roles, cmd, qual, with_check
        from pg_policies where schemaname = 'public' and policyname = 'tenant_isolation'
        """
    )
    by_table = {p["tablename"]: p for p in policies}
    assert sorted(by_table) == sorted(tables)
    for table, policy in by_table.items():
        assert policy["cmd"] == "ALL", table
        assert policy["roles"] == ["public"], table
        column = "id" if table == "tenants" else "tenant_id"
        expected = f"({column} = (NULLIF(current_setting('app.current_tenant'::text, true), ''::text))::uuid)"
        assert policy["qual"] == expected, table
        assert policy["with_check"] == expected, table


async def test_other_policies_are_only_the_owner_lookups(owner: asyncpg.Connection) -> None:
    others = await owner.fetch(
        """
        select tablename, policyname, cmd, roles from pg_policies
        where schemaname = 'public' and policyname <> 'tenant_isolation'
        order by tablename
        """
    )
    owner_role = await owner.fetchval("select current_user")
    assert [(p["tablename"], p["policyname"], p["cmd"]) for p in others] == [
        ("agent_connections", "owner_lookup", "SELECT"),
        ("api_tokens", "owner_lookup", "SELECT"),
        ("assignment_counter_deltas", "owner_lookup", "SELECT"),
        ("assignment_counters", "owner_lookup", "SELECT"),
        ("channels", "owner_lookup", "SELECT"),
        ("conversations", "owner_lookup", "SELECT"),
        ("events", "owner_lookup", "SELECT"),
        ("queues", "owner_lookup", "SELECT"),
        ("tenants", "owner_lookup", "SELECT"),
        ("users", "owner_lookup", "SELECT"),
    ]
    assert all(p["roles"] == [owner_role] for p in others)


async def test_the_server_role_is_restricted(owner: asyncpg.Connection) -> None:
    role = await owner.fetchrow(
        "select rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolcanlogin from pg_roles where rolname = $1",
        APP_ROLE,
    )
    assert role is not None
    assert not role["rolsuper"]
    assert not role["rolbypassrls"]
    assert not role["rolcreaterole"]
    assert not role["rolcreatedb"]
    assert role["rolcanlogin"]
    owned = await owner.fetch(
        """
        select c.relname from pg_class c
        where c.relnamespace = 'public'::regnamespace and pg_has_role($1, c.relowner, 'USAGE')
        """,
        APP_ROLE,
    )
    assert owned == []
    functions_owned = await owner.fetch(
        """
        select proname from pg_proc
        where pronamespace = 'public'::regnamespace and pg_has_role($1, proowner, 'USAGE')
        """,
        APP_ROLE,
    )
    assert functions_owned == []


async def test_the_server_connects_as_the_restricted_role(db: Database) -> None:
    async with db.connection() as conn:
        assert await conn.fetchval("select current_user") == APP_ROLE
        await roles.check_server_role(conn)


async def test_only_the_reviewed_lookups_are_security_definer(owner: asyncpg.Connection) -> None:
    definers = await owner.fetch(
        "select proname, proconfig from pg_proc where prosecdef and pronamespace = 'public'::regnamespace"
    )
    assert {d["proname"] for d in definers} == REVIEWED_DEFINER_FUNCTIONS
    for definer in definers:
        # A definer function without a fixed search_path can be hijacked by objects in another schema.
        assert any(setting.startswith("search_path=") for setting in definer["proconfig"] or []), definer
    public_can_execute = await owner.fetch(
        """
        select p.proname from pg_proc p
        where p.prosecdef and p.pronamespace = 'public'::regnamespace
          and has_function_privilege('public', p.oid, 'EXECUTE')
        """
    )
    assert public_can_execute == []


async def test_no_views_bypass_row_level_security(owner: asyncpg.Connection) -> None:
    views = await owner.fetch(
        """
        select c.relname, c.reloptions from pg_class c
        where c.relnamespace = 'public'::regnamespace and c.relkind in ('v', 'm')
        """
    )
    unsafe = [v["relname"] for v in views if "security_invoker=true" not in (v["reloptions"] or [])]
    assert unsafe == []


async def test_foreign_keys_between_tenant_tables_carry_the_tenant(owner: asyncpg.Connection) -> None:
    """Key checks bypass RLS: only a key that includes tenant_id keeps a row from pointing across tenants."""
    keys = await owner.fetch(
        """
        select con.conname, src.relname as source, dst.relname as target,
               array(select a.attname from unnest(con.conkey) k join pg_attribute a
                     on a.attrelid = con.conrelid and a.attnum = k) as columns
        from pg_constraint con
        join pg_class src on src.oid = con.conrelid
        join pg_class dst on dst.oid = con.confrelid
        where con.contype = 'f' and src.relnamespace = 'public'::regnamespace
        """
    )
    assert keys, "expected foreign keys"
    single_column = [k["conname"] for k in keys if k["target"] != "tenants" and "tenant_id" not in k["columns"]]
    assert single_column == []

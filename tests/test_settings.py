"""Settings from the environment: a wrong value is reported by variable name, never by value, and secrets
never show in the settings' repr or in an error."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fiv_console.settings import ConfigError, Settings, load_settings
from tests.conftest import project_root

SECRETS = ("hunter2", "topsecret-0123456789", "app-secret-42", "verify-me-7", "app-role-pw", "redis-pw")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting of the outer environment (DATABASE_URL, PORT, ...) takes part, whatever its case."""
    fields = set(Settings.model_fields)
    for name in list(os.environ):
        if name.lower() in fields:
            monkeypatch.delenv(name)


def config_error(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    # Nothing chained: pydantic's report, which echoes the input, must not surface in a traceback.
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    return str(caught.value)


def test_defaults_need_no_environment() -> None:
    settings = load_settings()
    assert settings.database_url is None  # the embedded PostgreSQL
    assert settings.redis_url is None  # the in-process bus
    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 8080, "INFO")


def test_values_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9090")
    monkeypatch.setenv("HOST", "10.1.2.3")
    monkeypatch.setenv("DATABASE_URL", "postgresql://owner:pw@db.internal:5433/fiv")
    monkeypatch.setenv("REDIS_URL", "rediss://cache.internal:6380/1")
    monkeypatch.setenv("COOKIE_SECURE", "true")
    settings = load_settings()
    assert (settings.port, settings.host, settings.cookie_secure) == (9090, "10.1.2.3", True)
    assert settings.database_url == "postgresql://owner:pw@db.internal:5433/fiv"
    assert settings.redis_url == "rediss://cache.internal:6380/1"


@pytest.mark.parametrize("value", ["abc", "80.5", "0", "65536"])
def test_a_bad_port_names_port_and_not_the_value(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    message = config_error(monkeypatch, PORT=value)
    assert message.startswith("PORT: "), message
    assert value not in message


@pytest.mark.parametrize(
    "value",
    [
        "not a url",
        "mysql://user:hunter2@db/fiv",
        "postgresql:///no-host",
        "postgresql://user:hunter2@db:notaport/fiv",
    ],
)
def test_a_bad_database_url_names_database_url(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    message = config_error(monkeypatch, DATABASE_URL=value)
    assert message.startswith("DATABASE_URL: "), message
    assert value not in message
    assert "hunter2" not in message


def test_a_bad_database_app_url_names_database_app_url(monkeypatch: pytest.MonkeyPatch) -> None:
    message = config_error(monkeypatch, DATABASE_APP_URL="http://app:app-role-pw@db/fiv")
    assert message.startswith("DATABASE_APP_URL: "), message
    assert "app-role-pw" not in message


def test_a_socket_database_url_and_an_empty_one_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@/fiv?host=/run/postgresql")
    assert load_settings().database_url == "postgresql://postgres@/fiv?host=/run/postgresql"
    monkeypatch.setenv("DATABASE_URL", "")
    assert load_settings().database_url is None


@pytest.mark.parametrize("value", ["http://x", "postgresql://cache/0"])
def test_a_bad_redis_url_names_redis_url(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    message = config_error(monkeypatch, REDIS_URL=value)
    assert message.startswith("REDIS_URL: "), message
    assert value not in message


def test_log_level_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "debug")
    assert load_settings().log_level == "DEBUG"
    monkeypatch.setenv("LOG_LEVEL", "Warning")
    assert load_settings().log_level == "WARNING"
    message = config_error(monkeypatch, LOG_LEVEL="chatty")
    assert message.startswith("LOG_LEVEL: "), message
    assert "chatty" not in message


def test_several_bad_values_report_the_first_and_count_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    message = config_error(monkeypatch, PORT="abc", REDIS_URL="http://x", LOG_LEVEL="chatty")
    assert message.endswith("(and 2 more)"), message
    assert message.split(":")[0] in ("PORT", "REDIS_URL", "LOG_LEVEL")


def set_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://owner:hunter2@db.internal:5432/fiv")
    monkeypatch.setenv("DATABASE_APP_URL", "postgresql://fiv_web:app-role-pw@db.internal:5432/fiv")
    monkeypatch.setenv("REDIS_URL", "redis://:redis-pw@cache.internal:6379/0")
    monkeypatch.setenv("SECRET_KEY", "topsecret-0123456789")
    monkeypatch.setenv("WHATSAPP_APP_SECRET", "app-secret-42")
    monkeypatch.setenv("WHATSAPP_VERIFY_TOKEN", "verify-me-7")


def test_secrets_stay_out_of_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    set_secrets(monkeypatch)
    settings = load_settings()
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == "topsecret-0123456789"
    assert settings.whatsapp_app_secret is not None
    assert settings.whatsapp_app_secret.get_secret_value() == "app-secret-42"
    for shown in (repr(settings), str(settings), f"{settings}", f"{settings!r}"):
        for secret in SECRETS:
            assert secret not in shown, (secret, shown)
    assert "port=8080" in repr(settings)


def test_secrets_stay_out_of_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    set_secrets(monkeypatch)
    message = config_error(monkeypatch, PORT="abc")
    assert message.startswith("PORT: "), message
    for secret in (*SECRETS, "abc"):
        assert secret not in message, (secret, message)


def test_the_command_line_reports_a_bad_port_in_one_line() -> None:
    env = {key: value for key, value in os.environ.items() if key.lower() not in Settings.model_fields}
    env.update(PORT="abc", SECRET_KEY="topsecret-0123456789", DATABASE_URL="postgresql://owner:hunter2@127.0.0.1:9/fiv")
    run = subprocess.run(
        [sys.executable, "-m", "fiv_console", "serve"],
        env=env,
        cwd=project_root(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2, run
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run
    assert lines[0].startswith("fiv-console: error: configuration: PORT: "), run
    for secret in ("abc", "topsecret-0123456789", "hunter2"):
        assert secret not in run.stderr


@pytest.mark.parametrize("value", ["0", "0.5", "-1", "abc", "3601"])
def test_a_bad_shutdown_timeout_names_shutdown_timeout(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    message = config_error(monkeypatch, SHUTDOWN_TIMEOUT=value)
    assert message.startswith("SHUTDOWN_TIMEOUT: "), message


def test_the_shutdown_timeout_is_read_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().shutdown_timeout == 30
    monkeypatch.setenv("SHUTDOWN_TIMEOUT", "7.5")
    assert load_settings().shutdown_timeout == 7.5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS", "0"),
        ("LOGIN_FAILURES_PER_ADDRESS", "many"),
        ("LOGIN_ACCOUNT_DELAY_AFTER", "0"),
        ("LOGIN_ACCOUNT_DELAY_MAX_SECONDS", "60"),
    ],
)
def test_login_throttling_settings_are_bounded(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    assert config_error(monkeypatch, **{variable: value}).startswith(f"{variable}: ")


def test_login_throttling_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS", "4")
    monkeypatch.setenv("LOGIN_ACCOUNT_DELAY_MAX_SECONDS", "0")
    settings = load_settings()
    assert (settings.login_failures_per_account_and_address, settings.login_account_delay_max_seconds) == (4, 0)
    assert (settings.login_failures_per_address, settings.login_account_delay_after) == (50, 5)


@pytest.mark.parametrize("variable", ["LOGIN_ATTEMPTS_PER_ACCOUNT", "login_attempts_per_address"])
def test_a_retired_login_setting_stops_the_start_naming_its_successor(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    message = config_error(monkeypatch, **{variable: "3"})
    assert message.startswith(f"{variable.upper()}: no longer read"), message
    assert "LOGIN_FAILURES_PER_" in message

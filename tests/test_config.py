"""Configuration: every mistake names the key, the value and the rule (pydantic-settings)."""

from __future__ import annotations

from typing import Any

import pytest

from flask_sessions.config import ConfigError, Settings, load


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.upper().startswith("SESSIONS_"):
            monkeypatch.delenv(key)


def env_error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as err:
        load({})
    return str(err.value)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SESSIONS_MAX_SESSIONS": "abc"}, ["SESSIONS_MAX_SESSIONS='abc'", "valid integer"]),
        ({"SESSIONS_MAX_SESSIONS": "1.5"}, ["SESSIONS_MAX_SESSIONS='1.5'", "integer"]),
        ({"SESSIONS_LAUNCH_AT_INIT": "treu"}, ["SESSIONS_LAUNCH_AT_INIT='treu'", "boolean"]),
        ({"SESSIONS_WARM_POOL": "null"}, ["SESSIONS_WARM_POOL='null'", "integer"]),
        ({"SESSIONS_TOKENS": "[1,2"}, ["SESSIONS_TOKENS='[1,…'", "not valid JSON"]),
        ({"SESSIONS_TOKENS": "tok1,,tok2"}, ["SESSIONS_TOKENS", "empty token between commas"]),
        (
            {"SESSIONS_MAX_SESSION": "5"},
            ["SESSIONS_MAX_SESSION", "did you mean SESSIONS_MAX_SESSIONS"],
        ),
        ({"SESSIONS_MAX_SESSIONS": "0"}, ["SESSIONS_MAX_SESSIONS='0'", "greater than 0"]),
        (
            {"SESSIONS_MAX_TIMEOUT_MINUTES": "30"},
            ["SESSIONS_MAX_TIMEOUT_MINUTES='30'", "less than 30"],
        ),
        ({"SESSIONS_LOG_LEVEL": "LOUD"}, ["SESSIONS_LOG_LEVEL='LOUD'", "DEBUG"]),
        ({"SESSIONS_VERIFY_TOKEN": "mod.fn"}, ["SESSIONS_VERIFY_TOKEN='mod.fn'", "callable"]),
        ({"SESSIONS_BROWSER_ARGS": '["--a",'}, ["SESSIONS_BROWSER_ARGS", "not valid JSON"]),
    ],
)
def test_environment_mistakes_name_key_value_and_rule(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: list[str]
) -> None:
    message = env_error(monkeypatch, **env)
    for part in expected:
        assert part in message, message
    assert "(from the environment)" in message or "in the environment" in message


def test_every_mistake_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    message = env_error(monkeypatch, SESSIONS_MAX_SESSIONS="abc", SESSIONS_WARM_POOL="-1")
    assert "SESSIONS_MAX_SESSIONS" in message and "SESSIONS_WARM_POOL" in message


def test_lists_come_as_json_and_one_flag_keeps_its_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONS_BROWSER_ARGS", "--window-size=800,600")
    monkeypatch.setenv("SESSIONS_TOKENS", '["a", "b"]')
    settings = load({})
    assert settings.browser_args == ("--window-size=800,600",)
    assert settings.tokens == {"a": "token-1", "b": "token-2"}
    monkeypatch.setenv("SESSIONS_BROWSER_ARGS", '["--a", "--b=1,2"]')
    monkeypatch.setenv("SESSIONS_TOKENS", '{"k": "svc"}')
    settings = load({})
    assert settings.browser_args == ("--a", "--b=1,2")
    assert settings.tokens == {"k": "svc"}
    monkeypatch.setenv("SESSIONS_TOKENS", "123")  # a plain string is one token, not a number
    assert load({}).tokens == {"123": "token-1"}


def test_comma_separated_tokens_are_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """``tok1,tok2`` means two tokens, as SESSIONS_HOSTS' commas mean two hosts."""
    monkeypatch.setenv("SESSIONS_TOKENS", "tok1,tok2")
    assert load({}).tokens == {"tok1": "token-1", "tok2": "token-2"}
    monkeypatch.setenv("SESSIONS_TOKENS", " tok1 , tok2 ,tok3")  # spaces around are dropped
    assert load({}).tokens == {"tok1": "token-1", "tok2": "token-2", "tok3": "token-3"}
    assert load({"SESSIONS_TOKENS": "a,b"}).tokens == {"a": "token-1", "b": "token-2"}
    # the same tokens in the JSON list form give the same principals
    assert load({"SESSIONS_TOKENS": '["a", "b"]'}).tokens == load({"SESSIONS_TOKENS": "a,b"}).tokens


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("secret-one,,secret-two", "empty token between commas"),
        ("secret-one,", "empty token between commas"),
        ("secret-one,secret-one", "the same token twice"),
        ('["secret-one", "secret-one"]', "the same token twice"),
    ],
)
def test_token_list_mistakes(value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load({"SESSIONS_TOKENS": value})
    assert expected in str(err.value) and "SESSIONS_TOKENS" in str(err.value)
    assert "secret-one" not in str(err.value)  # a secret is never echoed


def test_typed_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONS_MAX_SESSIONS", "7")
    monkeypatch.setenv("SESSIONS_LAUNCH_AT_INIT", "true")
    monkeypatch.setenv("SESSIONS_LOG_LEVEL", "debug")
    monkeypatch.setenv("OTHER", "ignored")
    settings = load({})
    assert settings.max_sessions == 7 and settings.launch_at_init is True
    assert settings.log_level == "DEBUG"


def test_app_config_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONS_MAX_SESSIONS", "7")
    assert load({"SESSIONS_MAX_SESSIONS": 9}).max_sessions == 9
    assert load({"SESSIONS_MAX_SESSIONS": "9"}).max_sessions == 9


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"SESSIONS_MAX_SESSIONS": "abc"}, "SESSIONS_MAX_SESSIONS='abc' (from app.config)"),
        ({"SESSIONS_MAX_SESSION": 5}, "did you mean SESSIONS_MAX_SESSIONS"),
        ({"SESSIONS_VERIFY_TOKEN": "not callable"}, "callable"),
        (
            {"SESSIONS_DEFAULT_TIMEOUT_MINUTES": 20, "SESSIONS_MAX_TIMEOUT_MINUTES": 10},
            "SESSIONS_DEFAULT_TIMEOUT_MINUTES=20 is above SESSIONS_MAX_TIMEOUT_MINUTES=10",
        ),
        (
            {"SESSIONS_OPERATION_TIMEOUT_SECONDS": 5, "SESSIONS_NAVIGATION_TIMEOUT_MS": 9000},
            "SESSIONS_OPERATION_TIMEOUT_SECONDS=5 must be longer",
        ),
        ({"SESSIONS_REAPER_INTERVAL_SECONDS": 0}, "SESSIONS_REAPER_INTERVAL_SECONDS=0"),
        ({"SESSIONS_MAX_SESSIONS_PER_PRINCIPAL": 0}, "SESSIONS_MAX_SESSIONS_PER_PRINCIPAL=0"),
        ({"SESSIONS_HEALTH_PATH": "/m", "SESSIONS_METRICS_PATH": "/m"}, "must differ"),
    ],
)
def test_app_config_mistakes(config: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(config)
    assert expected in str(err.value)


def test_secrets_are_not_echoed() -> None:
    with pytest.raises(ConfigError) as err:
        load({"SESSIONS_TOKENS": '["a-very-secret-token", 1'})
    assert "a-very-secret-token" not in str(err.value)


def test_every_setting_is_documented() -> None:
    for name, info in Settings.model_fields.items():
        assert info.description, f"SESSIONS_{name.upper()} has no description"


def test_the_readme_documents_every_setting() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    for key in Settings.env_keys():
        assert f"`{key}`" in readme, f"{key} is missing from the README's Configuration table"


def test_app_config_alone_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``load(config, environ=False)``: the settings of ``config`` and the defaults only."""
    monkeypatch.setenv("SESSIONS_MAX_WAIT_MS", "1234")
    settings = load({"SESSIONS_MAX_SESSIONS": 7}, environ=False)
    assert settings.max_sessions == 7
    assert settings.max_wait_ms == Settings.model_fields["max_wait_ms"].default

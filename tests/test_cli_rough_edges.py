"""``flask whatsapp send`` as a new user meets it (issue 17).

Configuration errors are one line with exit status 2, also when Flask loads
the app; waits before a retry are shown as they start; ``--base-url`` sends
elsewhere; a simulator that loading the app started in the command's own
process (a chat no page shows) is refused instead of answered with a wamid.
"""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from flask import Flask
from flask.cli import FlaskGroup

from cel_whatsapp import ConfigurationError, RetryPolicy, WhatsappConnector
from cel_whatsapp.flask.cli import ConfigurationUsageError, for_command_line
from cel_whatsapp.simulator import Simulator
from cel_whatsapp.testing import FakeGraphAPI

from .components import ROOT, free_port
from .conftest import TOKEN, MakeConnector, make_app

SEND = ["whatsapp", "send", "--to", "16505551234", "hello"]


def _flask_cli(create_app: object) -> FlaskGroup:
    """The ``flask`` command, loading the app the way ``flask --app`` does."""
    return FlaskGroup(create_app=create_app, load_dotenv=False)  # type: ignore[arg-type]


def test_a_missing_token_is_one_line_and_status_2_when_the_app_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # FlaskGroup sets FLASK_RUN_FROM_CLI for good; undone after the test.
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "false")

    def create_app() -> Flask:
        app = Flask(__name__)
        WhatsappConnector(phone_number_id="1065403522", verify_token="v").init_app(app)
        return app

    result = CliRunner().invoke(_flask_cli(create_app), SEND)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: WhatsappConnector is missing required settings")
    assert "WHATSAPP_TOKEN: an access token: App Dashboard > WhatsApp > API Setup" in line
    assert "WHATSAPP_PHONE_NUMBER_ID" not in line  # only what is missing


def test_the_sample_app_without_credentials_says_so_in_one_line() -> None:
    """The issue's own case: a real ``flask`` process, SIMULATOR=0, no WHATSAPP_TOKEN."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WHATSAPP_", "OPENAI_")) and key != "SIMULATOR"
    }
    env.update(SIMULATOR="0", PYTHONPATH=str(ROOT))
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-m", "flask", "--app", "sample_app", *SEND],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ") and "WHATSAPP_TOKEN" in line


def test_the_converted_error_is_still_a_configuration_error() -> None:
    error = ConfigurationError("missing settings:\n  WHATSAPP_TOKEN: a token\n  B: c")
    assert for_command_line(error) is error  # no click command running: unchanged
    with click.Context(click.Command("send")):
        converted = for_command_line(error)
    assert isinstance(converted, ConfigurationError)
    assert isinstance(converted, click.ClickException)
    assert converted.exit_code == 2
    assert converted.format_message() == "missing settings: WHATSAPP_TOKEN: a token; B: c"


def test_a_configuration_error_at_send_time_is_status_2(
    make_connector: MakeConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = make_connector()
    app = make_app(connector)

    def refuse(*args: object, **kwargs: object) -> list[str]:
        raise ConfigurationError("WHATSAPP_TOKEN is not valid:\n  see the dashboard")

    monkeypatch.setattr(connector, "send", refuse)
    result = app.test_cli_runner().invoke(args=SEND)
    assert result.exit_code == 2
    assert result.stderr == "Error: WHATSAPP_TOKEN is not valid: see the dashboard\n"
    assert isinstance(ConfigurationUsageError("x"), ConfigurationError)


def test_each_retry_wait_is_shown_as_it_starts() -> None:
    refusing = f"http://127.0.0.1:{free_port()}/v25.0"  # nothing listens there
    connector = WhatsappConnector(
        TOKEN, "1065403522", "verify", app_secret="s", base_url=refusing, read_receipts=False
    )
    connector.retry = RetryPolicy(attempts=3, base_delay=0.01)
    app = make_app(connector)
    result = app.test_cli_runner().invoke(args=SEND)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert [line.split(" s ", 1)[1] for line in lines[:2]] == [
        f"to try {refusing} again (attempt {n} of 3): could not reach the Graph API "
        "(NoConnectionError)"
        for n in (2, 3)
    ]
    assert all(line.startswith("waiting 0.0") for line in lines[:2])
    assert lines[-1] == "Error: could not reach the Graph API (NoConnectionError)"
    assert TOKEN not in result.output


def test_base_url_sends_elsewhere(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    with FakeGraphAPI(token=TOKEN) as other:
        result = (
            make_app(make_connector())
            .test_cli_runner()
            .invoke(args=[*SEND[:2], "--base-url", other.base_url + "/", *SEND[2:]])
        )
        assert result.exit_code == 0, result.output
        assert other.sent_texts() == ["hello"]
    assert graph.requests == []


def test_base_url_must_be_an_http_url(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    result = (
        make_app(make_connector())
        .test_cli_runner()
        .invoke(args=[*SEND[:2], "--base-url", "127.0.0.1:8089", *SEND[2:]])
    )
    assert result.exit_code == 2
    assert "must start with http:// or https://" in result.stderr
    assert graph.requests == []


def _simulator_app() -> Flask:
    app = Flask(__name__)
    Simulator(app, share=False)
    WhatsappConnector(read_receipts=False).init_app(app)
    return app


def _close(app: Flask) -> None:
    app.extensions["cel_whatsapp.simulator"].link.close()


def test_a_simulator_started_by_the_command_itself_is_refused() -> None:
    lonely = _simulator_app()
    try:
        result = lonely.test_cli_runner().invoke(args=SEND)
        assert result.exit_code == 2
        [line] = result.stderr.splitlines()
        assert line.startswith("Error: no running simulator to send to")
        assert Simulator.hub_of(lonely).sent() == []  # type: ignore[union-attr]
        watched = _simulator_app()  # as if `python -m sample_app` ran it
        try:
            address = watched.config["WHATSAPP_BASE_URL"]
            result = lonely.test_cli_runner().invoke(args=SEND)
            assert result.exit_code == 2
            # Named in the advice (with others, if other simulators run on this machine).
            assert "--base-url" in result.stderr and address in result.stderr
            # Following that advice: the message lands in that simulator's chat.
            result = lonely.test_cli_runner().invoke(
                args=[*SEND[:2], "--base-url", address, *SEND[2:]]
            )
            assert result.exit_code == 0, result.output
            assert Simulator.hub_of(watched).sent_texts() == ["hello"]  # type: ignore[union-attr]
        finally:
            _close(watched)
    finally:
        _close(lonely)


def test_an_app_given_a_running_hub_joins_it(monkeypatch: pytest.MonkeyPatch) -> None:
    watched = _simulator_app()
    try:
        monkeypatch.setenv("WHATSAPP_BASE_URL", watched.config["WHATSAPP_BASE_URL"])
        joined = _simulator_app()
        assert Simulator.hub_of(joined) is None  # no hub of its own
        for key in ("WHATSAPP_BASE_URL", "WHATSAPP_TOKEN", "WHATSAPP_APP_SECRET"):
            assert joined.config[key] == watched.config[key]
        result = joined.test_cli_runner().invoke(args=SEND)
        assert result.exit_code == 0, result.output
        assert Simulator.hub_of(watched).sent_texts() == ["hello"]  # type: ignore[union-attr]
    finally:
        _close(watched)

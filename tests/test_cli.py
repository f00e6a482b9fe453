"""``flask whatsapp send`` and ``send-template`` against the fake Graph API."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskCliRunner

from cel_whatsapp import WhatsappConnector, whatsapp_blueprint
from cel_whatsapp.testing import FakeGraphAPI

from .conftest import APP_SECRET, PHONE_NUMBER_ID, TOKEN, VERIFY_TOKEN, MakeConnector, make_app


def _runner(make_connector: MakeConnector, **options: object) -> FlaskCliRunner:
    return make_app(make_connector(**options)).test_cli_runner()


def test_send_prints_the_wamid(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    result = _runner(make_connector).invoke(
        args=["whatsapp", "send", "--to", "+16505551234", "Your order", "has shipped."]
    )
    assert result.exit_code == 0, result.output
    [request] = graph.sent()
    assert request.json["to"] == "16505551234"
    assert request.json["text"] == {"body": "Your order has shipped."}
    assert result.output.split() == [result.output.strip()]
    assert result.output.startswith("wamid.")


def test_send_with_preview_url(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    result = _runner(make_connector).invoke(
        args=["whatsapp", "send", "--to", "16505551234", "--preview-url", "https://example.com"]
    )
    assert result.exit_code == 0, result.output
    assert graph.sent()[0].json["text"] == {"body": "https://example.com", "preview_url": True}


def test_send_a_long_text_prints_every_wamid(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    text = "\n\n".join("word " * 300 for _ in range(4))
    result = _runner(make_connector).invoke(args=["whatsapp", "send", "--to", "16505551234", text])
    assert result.exit_code == 0, result.output
    assert len(result.output.split()) == len(graph.sent()) == 2


def test_send_template_with_params(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    result = _runner(make_connector).invoke(
        args=[
            "whatsapp",
            "send-template",
            "--to",
            "US.13491208655302741918",
            "order_update",
            "--lang",
            "es_AR",
            "--param",
            "Ana",
            "--param",
            "42",
        ]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("wamid.")
    [request] = graph.sent()
    assert request.json["recipient"] == "US.13491208655302741918"
    assert request.json["template"] == {
        "name": "order_update",
        "language": {"code": "es_AR"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "42"}],
            }
        ],
    }


def test_send_template_defaults(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    result = _runner(make_connector).invoke(
        args=["whatsapp", "send-template", "--to", "16505551234", "hello_world"]
    )
    assert result.exit_code == 0, result.output
    assert graph.sent()[0].json["template"] == {
        "name": "hello_world",
        "language": {"code": "en_US"},
    }


def test_metas_error_is_printed_with_a_failing_status(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    graph.fail_next(code=131047, message="Re-engagement message")
    result = _runner(make_connector).invoke(
        args=["whatsapp", "send", "--to", "16505551234", "hello?"]
    )
    assert result.exit_code == 1
    assert "only a template can reach this user now" in result.output
    assert "code=131047" in result.output
    assert TOKEN not in result.output


def test_a_bad_number_is_refused_before_sending(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    result = _runner(make_connector).invoke(args=["whatsapp", "send", "--to", "nobody", "hi"])
    assert result.exit_code == 1
    assert "E.164" in result.output
    assert graph.requests == []


def test_missing_arguments_are_usage_errors(make_connector: MakeConnector) -> None:
    runner = _runner(make_connector)
    assert runner.invoke(args=["whatsapp", "send", "hi"]).exit_code == 2
    assert runner.invoke(args=["whatsapp", "send", "--to", "16505551234"]).exit_code == 2
    assert runner.invoke(args=["whatsapp", "send-template", "--to", "1"]).exit_code == 2


def test_help_lists_the_commands(make_connector: MakeConnector) -> None:
    result = _runner(make_connector).invoke(args=["whatsapp", "--help"])
    assert result.exit_code == 0
    assert "send" in result.output and "send-template" in result.output


def test_the_group_is_named_after_the_blueprint(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    app = Flask(__name__)
    make_connector(name="support").init_app(app)
    result = app.test_cli_runner().invoke(args=["support", "send", "--to", "16505551234", "hi"])
    assert result.exit_code == 0, result.output
    assert graph.sent_texts() == ["hi"]


def test_the_one_call_blueprint_has_the_commands_too(graph: FakeGraphAPI) -> None:
    app = Flask(__name__)
    app.config["WHATSAPP_BASE_URL"] = graph.base_url
    app.register_blueprint(
        whatsapp_blueprint(
            TOKEN, PHONE_NUMBER_ID, VERIFY_TOKEN, assistant=lambda m: None, app_secret=APP_SECRET
        )
    )
    result = app.test_cli_runner().invoke(args=["whatsapp", "send", "--to", "16505551234", "x"])
    assert result.exit_code == 0, result.output
    assert graph.sent_texts() == ["x"]


def test_app_configured_connector(graph: FakeGraphAPI) -> None:
    app = Flask(__name__)
    app.config.update(
        WHATSAPP_TOKEN=TOKEN,
        WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
        WHATSAPP_VERIFY_TOKEN=VERIFY_TOKEN,
        WHATSAPP_APP_SECRET=APP_SECRET,
        WHATSAPP_BASE_URL=graph.base_url,
    )
    WhatsappConnector().init_app(app)
    result = app.test_cli_runner().invoke(
        args=["whatsapp", "send-template", "--to", "16505551234", "hello_world"]
    )
    assert result.exit_code == 0, result.output
    assert graph.sent()[0].json["type"] == "template"

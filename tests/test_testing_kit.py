"""The testing kit, used the way a user of the library would use it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from flask import Flask

from cel_whatsapp import Message, WhatsappConnector
from cel_whatsapp.testing import WhatsappTestClient, image_message, text_message, webhooks

from .doc_blocks import README, code_block, page


def create_app() -> Flask:
    """A user's app factory: the connector takes its settings from the environment."""
    app = Flask("users_bot")
    connector = WhatsappConnector(read_receipts=False)

    @connector.assistant
    def answer(message: Message) -> str:
        return f"You said: {message.text}"

    connector.init_app(app)
    return app


# The test a user writes: post a text webhook, assert the reply.
def test_bot_answers_a_text(whatsapp: WhatsappTestClient) -> None:
    app = create_app()
    response = whatsapp.send_text(app, "hello")
    assert response.status_code == 200
    assert whatsapp.sent_texts() == ["You said: hello"]
    assert whatsapp.sent()[0]["to"] == webhooks.DEFAULT_SENDER


def test_fixture_exports_settings_pointing_at_the_fake(
    whatsapp: WhatsappTestClient, monkeypatch
) -> None:
    import os

    assert os.environ["WHATSAPP_BASE_URL"] == whatsapp.graph.base_url
    assert os.environ["WHATSAPP_APP_SECRET"] == whatsapp.app_secret
    app = create_app()
    assert whatsapp.verify(app, "42").get_data(as_text=True) == "42"
    assert whatsapp.verify(app, "42", token="wrong").status_code == 403


def test_unsigned_and_badly_signed_posts_are_refused(whatsapp: WhatsappTestClient) -> None:
    app = create_app()
    body = webhooks.text_webhook("hi")
    assert whatsapp.post(app, body, signed=False).status_code == 401
    forged = {"X-Hub-Signature-256": "sha256=" + "0" * 64}
    assert whatsapp.post(app, body, headers=forged).status_code == 403
    assert whatsapp.sent() == []


def test_the_kit_always_sends_a_json_content_type(
    whatsapp: WhatsappTestClient, monkeypatch
) -> None:
    # The webhook answers 415 to a POST without one, as Meta always sends it.
    monkeypatch.delenv("WHATSAPP_APP_SECRET")
    assert webhooks.signed_headers(b"{}", None) == {"Content-Type": "application/json"}
    assert webhooks.signed_headers(b"{}", "s")["Content-Type"] == "application/json"
    unsigned = WhatsappTestClient(whatsapp.graph, app_secret=None)
    app = Flask("unsigned_bot")
    app.config.update(unsigned.config)  # no app secret: signatures are not checked
    connector = WhatsappConnector(read_receipts=False, dispatch="inline")
    connector.assistant(lambda message: f"You said: {message.text}")
    connector.init_app(app)
    assert unsigned.post(app, webhooks.text_webhook("hi"), signed=False).status_code == 200
    assert unsigned.sent_texts() == ["You said: hi"]


def test_send_builds_any_message_and_scripted_failures_reach_the_app(
    whatsapp: WhatsappTestClient, caplog
) -> None:
    app = create_app()
    whatsapp.graph.fail_next(status=400, code=131047, message="Re-engagement message")
    assert whatsapp.send(app, text_message("first", sender="15550001111")).status_code == 200
    assert "131047" in caplog.text  # the (fake) Graph API refused the reply; the app logged it
    whatsapp.graph.reset()
    whatsapp.send(app, image_message(caption="a cat"), text_message("second"))
    assert whatsapp.sent_types() == ["text", "text"]
    assert whatsapp.sent_texts()[1] == "You said: second"


def test_settle_drains_connectors_that_work_in_the_background(
    whatsapp: WhatsappTestClient,
) -> None:
    calls: list[float] = []

    class BackgroundConnector(WhatsappConnector):
        def drain(self, timeout: float) -> bool:
            calls.append(timeout)
            return True

    app = Flask("bg")
    BackgroundConnector(assistant=lambda m: "ok", read_receipts=False).init_app(app)
    whatsapp.send_text(app, "x")
    assert calls == [whatsapp.settle_timeout]


def test_plugin_is_registered_for_a_users_project(tmp_path: Path) -> None:
    """A fresh project with no conftest gets the fixtures through the pytest11 entry point."""
    (tmp_path / "test_users_bot.py").write_text(
        textwrap.dedent(
            """
            from flask import Flask
            from cel_whatsapp import WhatsappConnector

            def test_echo(whatsapp):
                app = Flask("bot")
                WhatsappConnector(assistant=lambda m: m.text.upper()).init_app(app)
                whatsapp.send_text(app, "ping")
                assert whatsapp.sent_texts() == ["PING"]
                assert len(whatsapp.read_receipts()) == 1
            """
        )
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and a file we wrote
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


@pytest.mark.parametrize(
    ("app_page", "test_page"),
    [(README, README), (page("quickstart"), page("testing"))],
    ids=["README", "docs"],
)
def test_the_quickstart_and_its_test_pass_in_a_new_project(
    tmp_path: Path, app_page: Path, test_page: Path
) -> None:
    """The quickstart copied to myproject.py and the test shown to test_bot.py, as written."""
    import os

    (tmp_path / "myproject.py").write_text(code_block(app_page, "def create_app() -> Flask:"))
    (tmp_path / "test_bot.py").write_text(code_block(test_page, "def test_bot_answers(whatsapp)"))
    root = str(Path(__file__).resolve().parent.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHATSAPP_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), root])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_bot.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_quickstart_app_with_real_looking_config_talks_to_the_fake(
    whatsapp: WhatsappTestClient,
) -> None:
    """app.config wins over the environment, yet the test client points the app at the fake."""
    app = Flask("quickstart")
    app.config.update(
        WHATSAPP_TOKEN="EAAG-real-looking",
        WHATSAPP_PHONE_NUMBER_ID="1065403522",
        WHATSAPP_VERIFY_TOKEN="pick-any-secret",
        WHATSAPP_APP_SECRET="app-secret",
    )
    connector = WhatsappConnector(read_receipts=False, assistant=lambda m: f"You said: {m.text}")
    connector.init_app(app)
    assert whatsapp.verify(app, "7").get_data(as_text=True) == "7"
    assert whatsapp.send_text(app, "hello").status_code == 200
    assert whatsapp.sent_texts() == ["You said: hello"]
    [request] = whatsapp.graph.sent()
    assert request.path == f"/v25.0/{whatsapp.phone_number_id}/messages"


def test_fail_next_fails_the_next_message_send_not_the_read_receipt(
    whatsapp: WhatsappTestClient,
) -> None:
    from cel_whatsapp.testing import any_request

    app = Flask("receipts")
    connector = WhatsappConnector(dispatch="inline", assistant=lambda m: "answer")
    failed: list[int | None] = []
    connector.on_send_error(lambda message, error: failed.append(error.code))
    connector.init_app(app)
    whatsapp.graph.fail_next(status=400, code=131026, message="Undeliverable")
    assert whatsapp.send_text(app, "hi").status_code == 200
    # The read receipt went through; the answer was the request that failed.
    assert failed == [131026]
    assert len(whatsapp.read_receipts()) == 1
    # match=any_request fails whatever comes next: here the read receipt,
    # which is only logged, so the answer then goes out.
    whatsapp.graph.fail_next(status=400, code=100, match=any_request)
    assert whatsapp.send_text(app, "again", id="wamid.AGAIN").status_code == 200
    assert failed == [131026]
    assert whatsapp.graph.sent_types() == whatsapp.sent_types() == ["text", "text"]

"""One connector, several apps: each app verifies, checks and sends with its own settings."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from cel_whatsapp import Message, WhatsappConnector
from cel_whatsapp.testing import FakeGraphAPI, text_webhook

from .conftest import post_webhook

PACKAGE = Path(__file__).resolve().parent.parent / "cel_whatsapp"

SETTINGS = {
    "a": {"token": "token-of-a", "number": "1110001", "verify": "verify-a", "secret": "secret-a"},
    "b": {"token": "token-of-b", "number": "2220002", "verify": "verify-b", "secret": "secret-b"},
    "c": {"token": "token-of-c", "number": "3330003", "verify": "verify-c", "secret": "secret-c"},
}

# The app-factory pattern: one module-level extension, many apps.
whatsapp = WhatsappConnector(dispatch="inline", read_receipts=False)


@whatsapp.assistant
def answer(message: Message) -> str:
    return f"{message.lead.phone_number_id} heard {message.text}"


def create_app(name: str, graph: FakeGraphAPI) -> Flask:
    values = SETTINGS[name]
    app = Flask(f"app_{name}")
    app.config.update(
        WHATSAPP_TOKEN=values["token"],
        WHATSAPP_PHONE_NUMBER_ID=values["number"],
        WHATSAPP_VERIFY_TOKEN=values["verify"],
        WHATSAPP_APP_SECRET=values["secret"],
        WHATSAPP_BASE_URL=graph.base_url,
    )
    whatsapp.init_app(app)
    return app


@pytest.fixture
def any_token_graph() -> Any:
    """A fake Graph API that accepts any bearer token, so each app's own is recorded."""
    with FakeGraphAPI(token=None) as server:
        yield server


def _verify(app: Flask, token: str) -> int:
    query = {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "42"}
    return app.test_client().get("/whatsapp", query_string=query).status_code


def test_each_app_verifies_its_own_token_and_refuses_the_others(any_token_graph: Any) -> None:
    apps = {name: create_app(name, any_token_graph) for name in SETTINGS}
    for name, app in apps.items():
        for other, values in SETTINGS.items():
            expected = 200 if other == name else 403
            assert _verify(app, values["verify"]) == expected, (name, other)


def test_each_app_checks_signatures_with_its_own_secret(any_token_graph: Any) -> None:
    apps = {name: create_app(name, any_token_graph) for name in SETTINGS}
    for name, app in apps.items():
        client = app.test_client()
        body = text_webhook("hi", phone_number_id=SETTINGS[name]["number"], id=f"wamid.S{name}")
        for other, values in SETTINGS.items():
            if other != name:
                assert post_webhook(client, body, secret=values["secret"]).status_code == 403
        assert post_webhook(client, body, secret=SETTINGS[name]["secret"]).status_code == 200


def test_each_app_sends_with_its_own_token_and_number(any_token_graph: Any) -> None:
    graph = any_token_graph
    apps = {name: create_app(name, graph) for name in SETTINGS}
    for name, app in apps.items():
        values = SETTINGS[name]
        body = text_webhook("ping", phone_number_id=values["number"], id=f"wamid.T{name}")
        assert post_webhook(app.test_client(), body, secret=values["secret"]).status_code == 200
        with app.app_context():  # proactive sends too
            whatsapp.send("16505551234", f"proactive from {name}")
    seen = [
        (request.headers.get("authorization"), request.path, request.json["text"]["body"])
        for request in graph.sent()
    ]
    expected = []
    for name, values in SETTINGS.items():
        auth = f"Bearer {values['token']}"
        path = f"/v25.0/{values['number']}/messages"
        expected += [
            (auth, path, f"{values['number']} heard ping"),
            (auth, path, f"proactive from {name}"),
        ]
    assert seen == expected


def test_attributes_follow_the_current_app(any_token_graph: Any) -> None:
    apps = {name: create_app(name, any_token_graph) for name in SETTINGS}
    for name, app in apps.items():
        with app.app_context():
            assert whatsapp.token == SETTINGS[name]["token"]
            assert whatsapp.phone_number_id == SETTINGS[name]["number"]
            assert whatsapp.verify_token == SETTINGS[name]["verify"]
            assert whatsapp.url == f"{any_token_graph.base_url}/{SETTINGS[name]['number']}/messages"
    # Outside any app: the constructor's arguments and the environment (none here).
    assert whatsapp.token is None and whatsapp.phone_number_id is None


def test_outside_an_app_the_environment_is_used(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .conftest import PHONE_NUMBER_ID, TOKEN

    monkeypatch.setenv("WHATSAPP_TOKEN", TOKEN)
    monkeypatch.setenv("WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID)
    monkeypatch.setenv("WHATSAPP_BASE_URL", graph.base_url)
    connector = WhatsappConnector()
    assert connector.send("16505551234", "from a script")
    assert graph.sent_texts() == ["from a script"]


def test_configure_app_points_one_app_elsewhere(any_token_graph: Any) -> None:
    app_a, app_b = create_app("a", any_token_graph), create_app("b", any_token_graph)
    whatsapp.configure_app(app_a, verify_token="replaced")
    assert _verify(app_a, "replaced") == 200
    assert _verify(app_a, SETTINGS["a"]["verify"]) == 403
    assert _verify(app_b, SETTINGS["b"]["verify"]) == 200
    with pytest.raises(TypeError, match="unknown"):
        whatsapp.configure_app(app_a, tokn="x")


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative ones resolved)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = parts[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_the_core_never_imports_flask() -> None:
    """Every module of the core, and what they import of ours, is free of flask and werkzeug."""
    seen: set[Path] = set()
    todo = [p for p in (PACKAGE / "core").rglob("*.py")]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            top = name.split(".")[0]
            assert top not in ("flask", "werkzeug", "click"), f"{path.name} imports {name}"
            # The package root re-exports the Flask connector for users; the core's
            # own modules and what they use of ours must not need Flask.
            if top == "cel_whatsapp" and name != "cel_whatsapp":
                target = PACKAGE.parent.joinpath(*name.split("."))
                for candidate in (target.with_suffix(".py"), target / "__init__.py"):
                    if candidate.is_file():
                        todo.append(candidate)
    assert len(seen) > 15  # the walk did reach the core's modules
    assert PACKAGE / "core" / "engine.py" in seen


def test_a_shared_session_carries_each_apps_own_token(any_token_graph: Any) -> None:
    """A user's requests.Session serves every app; the token goes per request, not on it."""
    import requests

    session = requests.Session()
    connector = WhatsappConnector(dispatch="inline", read_receipts=False, session=session)
    apps = {}
    for name in ("a", "b"):
        values = SETTINGS[name]
        app = Flask(f"shared_{name}")
        app.config.update(
            WHATSAPP_TOKEN=values["token"],
            WHATSAPP_PHONE_NUMBER_ID=values["number"],
            WHATSAPP_VERIFY_TOKEN=values["verify"],
            WHATSAPP_BASE_URL=any_token_graph.base_url,
        )
        connector.init_app(app)
        apps[name] = app
    for name in ("a", "b", "a", "b"):
        with apps[name].app_context():
            connector.send("16505551234", f"from {name}")
    tokens = [r.headers.get("authorization") for r in any_token_graph.sent()]
    assert tokens == [f"Bearer token-of-{n}" for n in ("a", "b", "a", "b")]
    assert "Authorization" not in session.headers  # the user's session is left as it was


def test_a_blueprint_registered_under_another_name_is_found(any_token_graph: Any) -> None:
    connector = WhatsappConnector("t", "1110001", "verify-me", dispatch="inline")
    app = Flask("renamed")
    app.register_blueprint(connector.blueprint, name="support", url_prefix="/support")
    query = {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "5"}
    response = app.test_client().get("/support/whatsapp", query_string=query)
    assert (response.status_code, response.get_data(as_text=True)) == (200, "5")


@pytest.mark.parametrize("argument", ["token", "verify_token", "app_secret"])
def test_a_secret_that_is_not_a_string_is_refused(argument: str) -> None:
    from cel_whatsapp import ConfigurationError

    with pytest.raises(ConfigurationError, match="must be a string"):
        WhatsappConnector(**{argument: b"bytes-are-not-a-secret"})  # type: ignore[arg-type]

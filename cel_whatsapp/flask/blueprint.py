"""The Flask adapter: two thin views that hand plain values to the core.

The views look up the per-app :class:`~cel_whatsapp.core.webhook.WebhookHandler`
in ``app.extensions`` so one blueprint can serve several apps, each with its
own configuration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from werkzeug.wsgi import get_content_length

from ..core.webhook import NOSNIFF, HttpResult

if TYPE_CHECKING:
    from ..core.engine import WhatsappCore

EXTENSION_KEY = "cel_whatsapp"

_JSON_TYPES = ("application/json", "text/json")


def normalise_prefix(prefix: str) -> str:
    """``"whatsapp/"`` -> ``"/whatsapp"``; ``""`` and ``"/"`` -> ``""`` (the site root)."""
    prefix = (prefix or "").strip()
    return "/" + prefix.strip("/") if prefix.strip("/") else ""


def _respond(result: HttpResult) -> Response:
    return Response(
        result.body,
        status=result.status,
        content_type=result.content_type,
        headers=list(result.headers),
    )


def build_blueprint(
    name: str,
    prefix: str,
    *,
    import_name: str = __name__,
    max_body_bytes: Callable[[], int],
) -> Blueprint:
    """A blueprint with GET and POST at ``prefix`` and ``prefix + "/"``, neither redirecting."""
    blueprint = Blueprint(name, import_name)

    def handler() -> WhatsappCore:
        # Keyed by the name the blueprint was registered under (``name=`` and
        # nesting change it), which is what request.blueprint says.
        cores: dict[str, WhatsappCore] = current_app.extensions[EXTENSION_KEY]
        if len(cores) == 1:  # one connector on this app (nearly always): no need to ask
            return next(iter(cores.values()))
        return cores[str(request.blueprint)]

    def verify() -> Response:
        return _respond(handler().verify(request.args))

    def deliver(core: WhatsappCore) -> HttpResult:
        limit = max_body_bytes()
        # The WSGI environ read directly (PEP 3333): each attribute of the
        # request proxy costs a few calls, on every webhook.
        environ = request.environ
        length = get_content_length(environ)
        if length is not None and length > limit:
            return HttpResult.error(413, f"body larger than {limit} bytes")
        # Meta always sends application/json; a POST without a Content-Type is not Meta's.
        mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip(" \t").lower()
        if mimetype not in _JSON_TYPES:
            return HttpResult.error(415, "Content-Type must be application/json")
        body = request.stream.read(limit + 1)
        if len(body) > limit:
            return HttpResult.error(413, f"body larger than {limit} bytes")
        return core.receive(body, environ.get("HTTP_X_HUB_SIGNATURE_256"))

    def receive() -> Response:
        core = handler()
        metrics = core.behaviour.metrics
        if metrics is None:
            return _respond(deliver(core))
        started = time.perf_counter()
        status = 500  # what Flask answers if deliver() raises
        try:
            result = deliver(core)
            status = result.status
        finally:
            metrics.webhook(status, time.perf_counter() - started)
        return _respond(result)

    path = normalise_prefix(prefix)
    rules = [path, path + "/"] if path else ["/"]
    for rule in rules:
        blueprint.add_url_rule(rule, "verify", verify, methods=["GET"], strict_slashes=False)
        blueprint.add_url_rule(rule, "receive", receive, methods=["POST"], strict_slashes=False)
    _mark_error_pages(blueprint, path)
    return blueprint


def _mark_error_pages(blueprint: Blueprint, path: str) -> None:
    """``nosniff`` on Flask's own answers under the webhook's path (404, 405...).

    A PUT to the webhook or a GET of ``/whatsapp/x`` is answered by Flask's
    routing before any view of ours runs, with an HTML error page; our own
    answers carry ``X-Content-Type-Options: nosniff`` and these should too.
    The host app's other pages are left as they are.
    """
    # Per app (the blueprint may be registered on several, under other prefixes).
    key = f"{EXTENSION_KEY}.error_page_paths"

    def remember(state: BlueprintSetupState) -> None:
        # The URL prefix given to register_blueprint (or a parent blueprint's).
        paths: set[str] = state.app.extensions.setdefault(key, set())
        paths.add((state.url_prefix or "").rstrip("/") + path)

    def mark(response: Response) -> Response:
        if response.status_code < 400 or "X-Content-Type-Options" in response.headers:
            return response
        here = request.path.rstrip("/")
        for root in current_app.extensions.get(key, ()):
            if here == root or (root and here.startswith(root + "/")):
                response.headers.extend(NOSNIFF)
                break
        return response

    blueprint.record(remember)
    blueprint.after_app_request(mark)

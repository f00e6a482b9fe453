"""``flask whatsapp ...``: send messages from the command line.

The commands are added to the connector blueprint's CLI group, so Flask
names the group after the blueprint (``whatsapp`` by default) when
:meth:`~cel_whatsapp.WhatsappConnector.init_app` registers it::

    flask whatsapp send --to +16505551234 "Your order has shipped"
    flask whatsapp send-template --to 16505551234 order_update --lang en_US --param Ana --param 42
    flask whatsapp send --from 106540352242922 --to 16505551234 "Sent from another number"
    flask whatsapp send --base-url http://127.0.0.1:8089/v25.0 --to 16505551234 "To a fake"

Each prints the wamid of every message sent, one per line, or Meta's error
on stderr with exit status 1. A configuration error (a missing setting, a
simulator no page shows) is one line on stderr with exit status 2, click's
usage-error status, also when it is raised while Flask loads the app. While
a failed call waits before trying again, each wait is shown on stderr.

``--base-url`` sends somewhere else than the app's ``WHATSAPP_BASE_URL``: to
a running simulator (the address of its hub: the message appears in its
chat, sent with the hub's own fake credentials), or to ``python -m
cel_whatsapp.testing.fake_graph``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click
from flask import Flask, current_app

from .. import config
from ..core import retry
from ..errors import CelWhatsappError, ConfigurationError
from ..replies import Reply, Template, Text

if TYPE_CHECKING:
    from .connector import WhatsappConnector


class ConfigurationUsageError(ConfigurationError, click.ClickException):
    """A :class:`~cel_whatsapp.ConfigurationError` met under a ``flask`` command.

    click prints it as one ``Error: ...`` line on stderr and exits with
    status 2, its status for usage errors, instead of a traceback. It is
    still a ``ConfigurationError`` for code that catches that.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        click.ClickException.__init__(self, _one_line(message))


def for_command_line(error: ConfigurationError) -> ConfigurationError:
    """``error`` as a :class:`ConfigurationUsageError` when a click command is running.

    The connector raises what this returns when its settings are refused at
    registration, so ``flask whatsapp send`` (or ``flask run``) with, say, no
    ``WHATSAPP_TOKEN`` says so in one line rather than in Flask's traceback
    of the app's loading. Outside a click command ``error`` comes back as is.
    """
    if isinstance(error, click.ClickException) or click.get_current_context(silent=True) is None:
        return error
    return ConfigurationUsageError(str(error))


def add_commands(group: click.Group, connector: WhatsappConnector) -> None:
    """Add ``send`` and ``send-template`` for ``connector`` to ``group``."""

    def deliver(
        to: str, build: Callable[[], Reply | str], sender: str | None, base_url: str | None
    ) -> None:
        app = current_app
        try:
            _point_at(app, connector, base_url)
            with _retries_shown(connector.core(app).settings.base_url):
                wamids = connector.send(to, build(), phone_number_id=sender)
        except ConfigurationError as exc:
            raise for_command_line(exc) from exc
        except (CelWhatsappError, ValueError, TypeError) as exc:
            raise click.ClickException(str(exc)) from exc
        for wamid in wamids:
            click.echo(wamid)

    @group.command("send")
    @click.option("--to", "to", required=True, metavar="NUMBER", help=_TO_HELP)
    @click.option("--from", "sender", metavar="PHONE_NUMBER_ID", help=_FROM_HELP)
    @_base_url_option
    @click.option("--preview-url", is_flag=True, help="Show a preview of the first URL.")
    @click.argument("text", nargs=-1, required=True)
    def send(
        to: str,
        sender: str | None,
        base_url: str | None,
        preview_url: bool,
        text: tuple[str, ...],
    ) -> None:
        """Send TEXT (all arguments, joined by spaces) as a text message.

        Works only inside the user's 24-hour customer-service window; use
        send-template otherwise.
        """
        body = " ".join(text)
        deliver(to, lambda: Text(body, preview_url=True) if preview_url else body, sender, base_url)

    @group.command("send-template")
    @click.option("--to", "to", required=True, metavar="NUMBER", help=_TO_HELP)
    @click.option("--from", "sender", metavar="PHONE_NUMBER_ID", help=_FROM_HELP)
    @_base_url_option
    @click.option(
        "--lang",
        "language",
        default="en_US",
        show_default=True,
        metavar="CODE",
        help="The template's language and locale code.",
    )
    @click.option(
        "--param",
        "params",
        multiple=True,
        metavar="VALUE",
        help="A body variable ({{1}}, {{2}}... in order); repeat for each.",
    )
    @click.argument("name")
    def send_template(
        to: str,
        sender: str | None,
        base_url: str | None,
        language: str,
        params: tuple[str, ...],
        name: str,
    ) -> None:
        """Send the approved message template NAME (reaches users outside the 24-hour window)."""
        deliver(to, lambda: Template.with_body(name, params, language=language), sender, base_url)


def _point_at(app: Flask, connector: WhatsappConnector, base_url: str | None) -> None:
    """Send to ``base_url`` when given; refuse to send into a chat no page shows."""
    if base_url is None:
        _refuse_a_private_simulator(app)
        return
    from ..simulator.shared import find_hub

    hub = find_hub(base_url)
    if hub is None:
        connector.configure_app(app, base_url=base_url.rstrip("/"))
        return
    # The hub's own fake credentials: the app's real token never goes there.
    connector.configure_app(
        app, base_url=hub.base_url, token=hub.token, phone_number_id=hub.phone_number_id
    )


def _refuse_a_private_simulator(app: Flask) -> None:
    from ..simulator.extension import EXTENSION_KEY, Simulator

    if EXTENSION_KEY not in app.extensions or Simulator.hub_of(app) is None:
        return
    # Loading the app for this command started a simulator hub in this very
    # process: a message sent there would get a wamid and reach no one.
    from ..simulator.shared import running_hubs

    own = app.config.get(config.BASE_URL_KEY)
    others = [hub.base_url for hub in running_hubs() if hub.base_url != own]
    if len(others) == 1:
        advice = f"a simulator is running at {others[0]}: add --base-url {others[0]}"
    elif others:
        advice = f"pick a running simulator with --base-url, one of: {', '.join(others)}"
    else:
        advice = (
            "start the app first (python -m sample_app, say), then pass the simulator "
            "address it logs with --base-url"
        )
    raise ConfigurationUsageError(
        "no running simulator to send to: loading the app started a new one, whose chat "
        f"no page shows; {advice}"
    )


@contextmanager
def _retries_shown(base_url: str) -> Iterator[None]:
    """Show on stderr each wait before a Graph API call is tried again, as it starts.

    Only the waits: the retry logger's "giving up" warning would repeat the
    error the command prints last.
    """
    retry_logger = logging.getLogger(retry.__name__)
    handler = _RetryEcho(base_url)
    level = retry_logger.level
    retry_logger.addHandler(handler)
    if retry_logger.getEffectiveLevel() > logging.INFO:
        retry_logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        retry_logger.removeHandler(handler)
        retry_logger.setLevel(level)


class _RetryEcho(logging.Handler):
    def __init__(self, base_url: str) -> None:
        super().__init__(logging.INFO)
        self.base_url = base_url

    def emit(self, record: logging.LogRecord) -> None:
        wait: retry.RetryWait | None = getattr(record, retry.RETRY_WAIT, None)
        try:
            if wait is not None:
                click.echo(
                    f"waiting {wait.seconds:.1f} s to try {self.base_url} again "
                    f"(attempt {wait.attempt} of {wait.attempts}): {wait.reason}",
                    err=True,
                )
        except Exception:  # a logging handler must not raise
            self.handleError(record)


def _check_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", ctx, param)
    return value


_base_url_option = click.option(
    "--base-url",
    "base_url",
    metavar="URL",
    callback=_check_url,
    help=(
        "Send to this Graph API root instead of WHATSAPP_BASE_URL: a running simulator "
        "(the message lands in its chat) or python -m cel_whatsapp.testing.fake_graph."
    ),
)


def _one_line(message: str) -> str:
    first, *rest = [line.strip() for line in message.splitlines() if line.strip()] or [""]
    return f"{first} {'; '.join(rest)}" if rest else first


_TO_HELP = (
    "The recipient: a phone number in E.164 form, with or without '+', "
    "or a business-scoped user id such as US.13491208655302741918."
)
_FROM_HELP = (
    "The phone number id to send from, one of the connector's numbers (default: the first)."
)

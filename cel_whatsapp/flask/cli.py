"""``flask whatsapp ...``: send messages from the command line.

The commands are added to the connector blueprint's CLI group, so Flask
names the group after the blueprint (``whatsapp`` by default) when
:meth:`~cel_whatsapp.WhatsappConnector.init_app` registers it::

    flask whatsapp send --to +16505551234 "Your order has shipped"
    flask whatsapp send-template --to 16505551234 order_update --lang en_US --param Ana --param 42
    flask whatsapp send --from 106540352242922 --to 16505551234 "Sent from another number"

Each prints the wamid of every message sent, one per line, or Meta's error
on stderr with exit status 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from ..errors import CelWhatsappError
from ..replies import Reply, Template, Text

if TYPE_CHECKING:
    from .connector import WhatsappConnector


def add_commands(group: click.Group, connector: WhatsappConnector) -> None:
    """Add ``send`` and ``send-template`` for ``connector`` to ``group``."""

    def deliver(to: str, build: Callable[[], Reply | str], sender: str | None) -> None:
        try:
            wamids = connector.send(to, build(), phone_number_id=sender)
        except (CelWhatsappError, ValueError, TypeError) as exc:
            raise click.ClickException(str(exc)) from exc
        for wamid in wamids:
            click.echo(wamid)

    @group.command("send")
    @click.option("--to", "to", required=True, metavar="NUMBER", help=_TO_HELP)
    @click.option("--from", "sender", metavar="PHONE_NUMBER_ID", help=_FROM_HELP)
    @click.option("--preview-url", is_flag=True, help="Show a preview of the first URL.")
    @click.argument("text", nargs=-1, required=True)
    def send(to: str, sender: str | None, preview_url: bool, text: tuple[str, ...]) -> None:
        """Send TEXT (all arguments, joined by spaces) as a text message.

        Works only inside the user's 24-hour customer-service window; use
        send-template otherwise.
        """
        body = " ".join(text)
        deliver(to, lambda: Text(body, preview_url=True) if preview_url else body, sender)

    @group.command("send-template")
    @click.option("--to", "to", required=True, metavar="NUMBER", help=_TO_HELP)
    @click.option("--from", "sender", metavar="PHONE_NUMBER_ID", help=_FROM_HELP)
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
        to: str, sender: str | None, language: str, params: tuple[str, ...], name: str
    ) -> None:
        """Send the approved message template NAME (reaches users outside the 24-hour window)."""
        deliver(to, lambda: Template.with_body(name, params, language=language), sender)


_TO_HELP = (
    "The recipient: a phone number in E.164 form, with or without '+', "
    "or a business-scoped user id such as US.13491208655302741918."
)
_FROM_HELP = (
    "The phone number id to send from, one of the connector's numbers (default: the first)."
)

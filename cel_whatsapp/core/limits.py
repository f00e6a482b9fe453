"""WhatsApp's limits on what a message may hold, and the two ways to meet them.

The numbers come from Meta's Cloud API reference for each message type
(https://developers.facebook.com/docs/whatsapp/cloud-api/messages). A reply
that breaks one is refused by Meta with an error, after the fact; here it is
caught before anything is sent, by one of two policies:

``"strict"``
    raise :class:`ValueError` naming the field, its length and the limit.
``"fit"`` (the default)
    make the reply fit and log a warning: over-long text is cut with an
    ellipsis, 4 or more reply buttons become a list, rows, sections and
    contacts past the maximum are dropped, a text message longer than 4096
    characters is split into several (as streamed text is).

Ids (button and row ids) are never changed: the app matches the id that
comes back when a user taps, so an over-long id raises under both policies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import Final, TypeVar, cast

from ..config import DEFAULT_POLICY as DEFAULT_POLICY
from ..config import POLICIES as POLICIES
from ..config import LimitPolicy as LimitPolicy
from ..config import check_policy as check_policy
from ..replies import (
    Button,
    Buttons,
    Contacts,
    CtaUrl,
    Document,
    Header,
    Image,
    ListMenu,
    Reply,
    Row,
    Section,
    Text,
    Video,
)
from ._sentences import split_text

logger = logging.getLogger(__name__)

TEXT_BODY: Final = 4096
INTERACTIVE_BODY: Final = 1024
LIST_BODY: Final = 4096
HEADER_TEXT: Final = 60
FOOTER_TEXT: Final = 60
REPLY_BUTTONS: Final = 3
BUTTON_TITLE: Final = 20
BUTTON_ID: Final = 256
LIST_BUTTON: Final = 20
LIST_SECTIONS: Final = 10
LIST_ROWS: Final = 10
SECTION_TITLE: Final = 24
ROW_TITLE: Final = 24
ROW_DESCRIPTION: Final = 72
ROW_ID: Final = 200
CTA_DISPLAY_TEXT: Final = 20
CAPTION: Final = 1024
CONTACTS: Final = 257

#: Every limit by the name used in error messages, for documentation and tests.
LIMITS: Final = MappingProxyType(
    {
        "Text.body": TEXT_BODY,
        "Buttons.body": INTERACTIVE_BODY,
        "Buttons.header": HEADER_TEXT,
        "Buttons.footer": FOOTER_TEXT,
        "Buttons.buttons": REPLY_BUTTONS,
        "Button.title": BUTTON_TITLE,
        "Button.id": BUTTON_ID,
        "ListMenu.body": LIST_BODY,
        "ListMenu.button": LIST_BUTTON,
        "ListMenu.header": HEADER_TEXT,
        "ListMenu.footer": FOOTER_TEXT,
        "ListMenu.sections": LIST_SECTIONS,
        "ListMenu.rows": LIST_ROWS,
        "Section.title": SECTION_TITLE,
        "Row.title": ROW_TITLE,
        "Row.description": ROW_DESCRIPTION,
        "Row.id": ROW_ID,
        "CtaUrl.body": INTERACTIVE_BODY,
        "CtaUrl.display_text": CTA_DISPLAY_TEXT,
        "CtaUrl.header": HEADER_TEXT,
        "CtaUrl.footer": FOOTER_TEXT,
        "caption": CAPTION,
        "Contacts.contacts": CONTACTS,
    }
)

#: The label of the menu button when ``"fit"`` turns 4 to 10 buttons into a list.
BUTTONS_AS_LIST_LABEL: Final = "Options"
ELLIPSIS: Final = "…"

_T = TypeVar("_T")


def shorten(value: str, limit: int) -> str:
    """``value`` cut to at most ``limit`` characters, ending with an ellipsis when cut."""
    if len(value) <= limit:
        return value
    return value[: limit - 1].rstrip() + ELLIPSIS


def fit_reply(reply: Reply, policy: str = DEFAULT_POLICY) -> list[Reply]:
    """The replies to send for ``reply`` so that each is within WhatsApp's limits.

    Usually ``[reply]`` unchanged. With ``"fit"`` the list may hold a changed
    reply, or several (a long text split; a media header sent before the
    list it could not head). With ``"strict"`` it raises instead.
    """
    fitter = _Fitter(check_policy(policy))
    for cls in type(reply).__mro__:
        handler = _HANDLERS.get(cls)
        if handler is not None:
            return handler(fitter, reply)
    return [reply]


class _Fitter:
    """Applies one policy to one reply, and says what it changed."""

    __slots__ = ("policy",)

    def __init__(self, policy: LimitPolicy) -> None:
        self.policy = policy

    @property
    def fits(self) -> bool:
        return self.policy == "fit"

    def text(self, field: str, value: str, limit: int) -> str:
        if len(value) <= limit:
            return value
        self.over(field, f"is {len(value)} characters long", limit, "characters")
        # The text itself is never logged: it may be private.
        logger.warning(
            "%s is %d characters, over WhatsApp's limit of %d: cut to fit",
            field,
            len(value),
            limit,
        )
        return shorten(value, limit)

    def optional(self, field: str, value: str | None, limit: int) -> str | None:
        return None if value is None else self.text(field, value, limit)

    def count(self, field: str, items: Sequence[_T], limit: int, what: str) -> Sequence[_T]:
        if len(items) <= limit:
            return items
        self.over(field, f"has {len(items)} {what}", limit, what)
        logger.warning(
            "%s has %d %s, over WhatsApp's limit of %d: only the first %d are sent",
            field,
            len(items),
            what,
            limit,
            limit,
        )
        return items[:limit]

    def over(self, field: str, what: str, limit: int, unit: str) -> None:
        """Raise under ``"strict"``; under ``"fit"`` the caller makes it fit."""
        if not self.fits:
            raise ValueError(f"{field} {what}; WhatsApp allows at most {limit} {unit}")

    @staticmethod
    def identifier(field: str, value: str, limit: int) -> str:
        if len(value) > limit:
            raise ValueError(
                f"{field} is {len(value)} characters long; WhatsApp allows at most {limit}. "
                "Ids are never cut (the app matches them when the user taps): shorten it"
            )
        return value

    def header(self, owner: str, header: Header | None) -> Header | None:
        if isinstance(header, str):
            return self.text(f"{owner}.header", header, HEADER_TEXT)
        return header


def _fit_text(fitter: _Fitter, reply: Reply) -> list[Reply]:
    text = cast(Text, reply)
    if len(text.body) <= TEXT_BODY:
        return [text]
    fitter.over("Text.body", f"is {len(text.body)} characters long", TEXT_BODY, "characters")
    pieces = split_text(text.body, TEXT_BODY)
    logger.warning(
        "Text.body is %d characters, over WhatsApp's limit of %d: sent as %d messages",
        len(text.body),
        TEXT_BODY,
        len(pieces),
    )
    return [
        Text(piece, preview_url=text.preview_url, reply_to=text.reply_to if i == 0 else None)
        for i, piece in enumerate(pieces)
    ]


def _unique_titles(fitter: _Fitter, buttons: Sequence[Button]) -> list[str]:
    """Button titles cut to fit, kept unique when cutting made two alike."""
    titles: list[str] = []
    for index, button in enumerate(buttons):
        title = fitter.text(f"Buttons.buttons[{index}].title", button.title, BUTTON_TITLE)
        number = 1
        while title in titles:
            number += 1
            suffix = f"{ELLIPSIS}{number}"
            title = button.title[: BUTTON_TITLE - len(suffix)].rstrip() + suffix
        titles.append(title)
    return titles


def _fit_buttons(fitter: _Fitter, reply: Reply) -> list[Reply]:
    buttons = cast(Buttons, reply)
    count = len(buttons.buttons)
    if count > REPLY_BUTTONS:
        fitter.over(
            "Buttons.buttons",
            f"has {count} buttons (use ListMenu for up to {LIST_ROWS} choices)",
            REPLY_BUTTONS,
            "buttons",
        )
        return _buttons_as_list(fitter, buttons)
    for index, button in enumerate(buttons.buttons):
        fitter.identifier(f"Buttons.buttons[{index}].id", button.id, BUTTON_ID)
    titles = _unique_titles(fitter, buttons.buttons)
    fitted = Buttons(
        fitter.text("Buttons.body", buttons.body, INTERACTIVE_BODY),
        [Button(b.id, title) for b, title in zip(buttons.buttons, titles, strict=True)],
        header=fitter.header("Buttons", buttons.header),
        footer=fitter.optional("Buttons.footer", buttons.footer, FOOTER_TEXT),
        reply_to=buttons.reply_to,
    )
    return [fitted]


def _buttons_as_list(fitter: _Fitter, buttons: Buttons) -> list[Reply]:
    """Under ``"fit"``: more than 3 buttons become the rows of a list."""
    logger.warning(
        "Buttons has %d buttons, over WhatsApp's limit of %d: sent as a list",
        len(buttons.buttons),
        REPLY_BUTTONS,
    )
    rows = []
    for index, button in enumerate(buttons.buttons):
        fitter.identifier(f"Buttons.buttons[{index}].id", button.id, ROW_ID)
        rows.append(Row(button.id, button.title))
    sent: list[Reply] = []
    header = buttons.header
    reply_to = buttons.reply_to
    if header is not None and not isinstance(header, str):
        # A list can only have a text header: the media goes first, on its own.
        logger.warning("a list cannot have a media header: the %s is sent before it", header.kind)
        sent.append(_with_reply_to(header, reply_to))
        header, reply_to = None, None
    menu = ListMenu(
        buttons.body,
        BUTTONS_AS_LIST_LABEL,
        rows,
        header=header,
        footer=buttons.footer,
        reply_to=reply_to,
    )
    return sent + _fit_list(fitter, menu)


def _with_reply_to(media: Image | Video | Document, reply_to: str | None) -> Reply:
    if isinstance(media, Image):
        return Image(link=media.link, media_id=media.media_id, reply_to=reply_to)
    if isinstance(media, Video):
        return Video(link=media.link, media_id=media.media_id, reply_to=reply_to)
    return Document(
        link=media.link, media_id=media.media_id, filename=media.filename, reply_to=reply_to
    )


def _fit_list(fitter: _Fitter, reply: Reply) -> list[Reply]:
    menu = cast(ListMenu, reply)
    sections = list(fitter.count("ListMenu.sections", menu.sections, LIST_SECTIONS, "sections"))
    total = sum(len(s.rows) for s in sections)
    if total > LIST_ROWS:
        fitter.count("ListMenu.rows", menu.rows, LIST_ROWS, "rows")
        sections = _first_rows(sections, LIST_ROWS)
    fitted_sections = []
    for s_index, section in enumerate(sections):
        rows = []
        for r_index, row in enumerate(section.rows):
            where = f"ListMenu.sections[{s_index}].rows[{r_index}]"
            fitter.identifier(f"{where}.id", row.id, ROW_ID)
            rows.append(
                Row(
                    row.id,
                    fitter.text(f"{where}.title", row.title, ROW_TITLE),
                    fitter.optional(f"{where}.description", row.description, ROW_DESCRIPTION),
                )
            )
        title = fitter.optional(f"ListMenu.sections[{s_index}].title", section.title, SECTION_TITLE)
        fitted_sections.append(Section(title, rows))
    fitted = ListMenu(
        fitter.text("ListMenu.body", menu.body, LIST_BODY),
        fitter.text("ListMenu.button", menu.button, LIST_BUTTON),
        fitted_sections,
        header=fitter.optional("ListMenu.header", menu.header, HEADER_TEXT),
        footer=fitter.optional("ListMenu.footer", menu.footer, FOOTER_TEXT),
        reply_to=menu.reply_to,
    )
    return [fitted]


def _first_rows(sections: Sequence[Section], limit: int) -> list[Section]:
    """The sections holding only the first ``limit`` rows; emptied sections are dropped."""
    kept: list[Section] = []
    left = limit
    for section in sections:
        if left <= 0:
            break
        rows = section.rows[:left]
        left -= len(rows)
        kept.append(Section(section.title, rows))
    return kept


def _fit_cta(fitter: _Fitter, reply: Reply) -> list[Reply]:
    cta = cast(CtaUrl, reply)
    return [
        CtaUrl(
            fitter.text("CtaUrl.body", cta.body, INTERACTIVE_BODY),
            fitter.text("CtaUrl.display_text", cta.display_text, CTA_DISPLAY_TEXT),
            cta.url,
            header=fitter.header("CtaUrl", cta.header),
            footer=fitter.optional("CtaUrl.footer", cta.footer, FOOTER_TEXT),
            reply_to=cta.reply_to,
        )
    ]


def _fit_captioned(fitter: _Fitter, reply: Reply) -> list[Reply]:
    media = cast(Image | Video | Document, reply)
    if media.caption is None or len(media.caption) <= CAPTION:
        return [media]
    caption = fitter.text(f"{type(media).__name__}.caption", media.caption, CAPTION)
    if isinstance(media, Image):
        return [
            Image(
                link=media.link, media_id=media.media_id, caption=caption, reply_to=media.reply_to
            )
        ]
    if isinstance(media, Video):
        return [
            Video(
                link=media.link, media_id=media.media_id, caption=caption, reply_to=media.reply_to
            )
        ]
    return [
        Document(
            link=media.link,
            media_id=media.media_id,
            caption=caption,
            filename=media.filename,
            reply_to=media.reply_to,
        )
    ]


def _fit_contacts(fitter: _Fitter, reply: Reply) -> list[Reply]:
    contacts = cast(Contacts, reply)
    kept = fitter.count("Contacts.contacts", contacts.contacts, CONTACTS, "contacts")
    if len(kept) == len(contacts.contacts):
        return [contacts]
    return [Contacts(*kept, reply_to=contacts.reply_to)]


_HANDLERS: Final[dict[type[Reply], Callable[[_Fitter, Reply], list[Reply]]]] = {
    Text: _fit_text,
    Buttons: _fit_buttons,
    ListMenu: _fit_list,
    CtaUrl: _fit_cta,
    Image: _fit_captioned,
    Video: _fit_captioned,
    Document: _fit_captioned,
    Contacts: _fit_contacts,
}

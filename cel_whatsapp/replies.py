"""What an assistant can answer with, beyond plain strings.

Every reply is a frozen value object that knows the message-type part of its
Cloud API send payload (:meth:`Reply.content`); the sender adds
``messaging_product`` and the recipient. Optional parts that are not given
are left out of the JSON, never sent as ``null``.

Constructors check structure (a body is not blank, a media reply has exactly
one of ``link`` and ``media_id``, button ids are unique). WhatsApp's length
and count limits are applied when the reply is sent, by the connector's
``limits`` policy (see :mod:`cel_whatsapp.core.limits`).

Payload reference:
https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, Union
from urllib.parse import urlsplit

__all__ = [
    "Audio",
    "Button",
    "Buttons",
    "Contact",
    "Contacts",
    "CtaUrl",
    "Document",
    "Image",
    "ListMenu",
    "Location",
    "React",
    "Reply",
    "Row",
    "Section",
    "Sticker",
    "Template",
    "Text",
    "Video",
]


class Reply:
    """Base class of everything an assistant can send besides plain text chunks.

    Subclasses implement :meth:`content`. Every reply except :class:`React`
    has a ``reply_to`` field: the wamid of a message to quote.
    """

    __slots__ = ()

    def content(self) -> dict[str, Any]:
        """The ``type`` key and the type-specific object of the send payload."""
        raise NotImplementedError

    def payload(self, *, default_reply_to: str | None = None) -> dict[str, Any]:
        """The send payload without the addressing fields (``to`` / ``recipient``)."""
        body: dict[str, Any] = {"messaging_product": "whatsapp"}
        body.update(self.content())
        quoted = getattr(self, "reply_to", None) or default_reply_to
        if quoted:
            body["context"] = {"message_id": quoted}
        return body


# -- checks shared by the constructors -----------------------------------------


def _set(obj: object, **values: Any) -> None:
    """Assign fields of a frozen dataclass from its own ``__init__``."""
    for name, value in values.items():
        object.__setattr__(obj, name, value)


def _required_text(owner: str, field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{owner}.{field} must be a non-empty string")
    return value


def _optional_text(owner: str, field: str, value: object) -> str | None:
    """``None`` and ``""`` both mean "leave it out"; anything else must be a string."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"{owner}.{field} must be a string or None, not {type(value).__name__}")
    if not value.strip():
        return None
    return value


def _optional_wamid(owner: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{owner}.reply_to must be a message id (wamid) or None")
    return value


def _check_url(owner: str, field: str, value: object) -> str:
    url = _required_text(owner, field, value)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{owner}.{field} must be an http(s) URL, got {url[:80]!r}")
    return url


def _text_object(text: str | None) -> dict[str, str] | None:
    return {"text": text} if text is not None else None


def _put(target: dict[str, Any], **values: Any) -> dict[str, Any]:
    """Add the values that are not ``None``: omitted parts never become ``null``."""
    for key, value in values.items():
        if value is not None:
            target[key] = value
    return target


# -- text ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text(Reply):
    """A text message; WhatsApp allows 4096 characters.

    ``preview_url=True`` asks WhatsApp to render a preview of the first URL.
    Over-long bodies are handled by the ``limits`` policy when sent.
    """

    body: str
    _: KW_ONLY
    preview_url: bool = False
    reply_to: str | None = None

    def __post_init__(self) -> None:
        _required_text("Text", "body", self.body)
        _optional_wamid("Text", self.reply_to)

    def content(self) -> dict[str, Any]:
        text: dict[str, Any] = {"body": self.body}
        if self.preview_url:
            text["preview_url"] = True
        return {"type": "text", "text": text}


# -- media ---------------------------------------------------------------------


class _Media(Reply):
    """Shared behaviour of media replies: exactly one of ``link`` and ``media_id``."""

    __slots__ = ()
    #: The message ``type`` and the key of the media object.
    kind = ""

    link: str | None
    media_id: str | None
    reply_to: str | None

    def _check_source(self) -> None:
        owner = type(self).__name__
        if (self.link is None) == (self.media_id is None):
            raise ValueError(f"{owner} takes exactly one of link= (a URL) or media_id=")
        if self.link is not None:
            _check_url(owner, "link", self.link)
        else:
            _required_text(owner, "media_id", self.media_id)
        _optional_wamid(owner, self.reply_to)

    def media_object(self) -> dict[str, Any]:
        """The ``{"id": ...}`` or ``{"link": ...}`` object with its optional parts."""
        if self.media_id is not None:
            return {"id": self.media_id}
        return {"link": self.link}

    def content(self) -> dict[str, Any]:
        return {"type": self.kind, self.kind: self.media_object()}

    def header(self) -> dict[str, Any]:
        """This media as the header of an interactive message."""
        if getattr(self, "caption", None) or self.reply_to:
            raise ValueError(
                f"{type(self).__name__} used as a header cannot have a caption or reply_to"
            )
        return {"type": self.kind, self.kind: self.media_object()}


@dataclass(frozen=True, slots=True, kw_only=True)
class Image(_Media):
    """An image (JPEG or PNG) by public ``link`` or uploaded ``media_id``, with an optional caption."""

    link: str | None = None
    media_id: str | None = None
    caption: str | None = None
    reply_to: str | None = None
    kind = "image"

    def __post_init__(self) -> None:
        self._check_source()
        _set(self, caption=_optional_text("Image", "caption", self.caption))

    def media_object(self) -> dict[str, Any]:
        return _put(_Media.media_object(self), caption=self.caption)


@dataclass(frozen=True, slots=True, kw_only=True)
class Video(_Media):
    """A video (MP4 or 3GPP) by ``link`` or ``media_id``, with an optional caption."""

    link: str | None = None
    media_id: str | None = None
    caption: str | None = None
    reply_to: str | None = None
    kind = "video"

    def __post_init__(self) -> None:
        self._check_source()
        _set(self, caption=_optional_text("Video", "caption", self.caption))

    def media_object(self) -> dict[str, Any]:
        return _put(_Media.media_object(self), caption=self.caption)


@dataclass(frozen=True, slots=True, kw_only=True)
class Audio(_Media):
    """An audio file by ``link`` or ``media_id``; WhatsApp shows no caption for audio.

    ``voice=True`` sends it as a voice message (an OGG/OPUS file): WhatsApp
    then downloads it automatically and may transcribe it.
    """

    link: str | None = None
    media_id: str | None = None
    voice: bool = False
    reply_to: str | None = None
    kind = "audio"

    def __post_init__(self) -> None:
        self._check_source()

    def media_object(self) -> dict[str, Any]:
        media = _Media.media_object(self)
        if self.voice:
            media["voice"] = True
        return media


@dataclass(frozen=True, slots=True, kw_only=True)
class Document(_Media):
    """A document by ``link`` or ``media_id``, with an optional caption and file name.

    ``filename`` (with its extension) is what the user sees and saves.
    """

    link: str | None = None
    media_id: str | None = None
    caption: str | None = None
    filename: str | None = None
    reply_to: str | None = None
    kind = "document"

    def __post_init__(self) -> None:
        self._check_source()
        _set(
            self,
            caption=_optional_text("Document", "caption", self.caption),
            filename=_optional_text("Document", "filename", self.filename),
        )

    def media_object(self) -> dict[str, Any]:
        return _put(_Media.media_object(self), caption=self.caption, filename=self.filename)

    def header(self) -> dict[str, Any]:
        header = _Media.header(self)
        _put(header["document"], filename=self.filename)
        return header


@dataclass(frozen=True, slots=True, kw_only=True)
class Sticker(_Media):
    """A WebP sticker by ``link`` or ``media_id``; stickers have no caption."""

    link: str | None = None
    media_id: str | None = None
    reply_to: str | None = None
    kind = "sticker"

    def __post_init__(self) -> None:
        self._check_source()


#: What an interactive message accepts as its header: text, or one of these media.
Header = Union[str, Image, Video, Document]  # noqa: UP007 - runtime alias on Python 3.10


def _header(owner: str, value: object) -> Header | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return _optional_text(owner, "header", value)
    if isinstance(value, (Image, Video, Document)):
        value.header()  # raises if it carries a caption or reply_to
        return value
    raise TypeError(
        f"{owner}.header must be a string, Image, Video or Document, not {type(value).__name__}"
    )


def header_object(header: Header) -> dict[str, Any]:
    """The ``header`` object of an interactive message."""
    if isinstance(header, str):
        return {"type": "text", "text": header}
    return header.header()


# -- interactive: reply buttons ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Button:
    """One reply button: ``id`` comes back in the webhook when tapped, ``title`` is shown."""

    id: str
    title: str

    def __post_init__(self) -> None:
        _required_text("Button", "id", self.id)
        _required_text("Button", "title", self.title)

    def to_dict(self) -> dict[str, Any]:
        """The ``{"type": "reply", "reply": {...}}`` object of the send payload."""
        return {"type": "reply", "reply": {"id": self.id, "title": self.title}}


def _button(value: Button | str) -> Button:
    if isinstance(value, Button):
        return value
    if isinstance(value, str):
        return Button(value, value)
    raise TypeError(f"a button must be a Button or a str title, not {type(value).__name__}")


@dataclass(frozen=True, slots=True, init=False)
class Buttons(Reply):
    """A message with up to 3 reply buttons.

    ``buttons`` are :class:`Button` objects or plain titles (then the id is
    the whole title, so long titles never collide). ``header`` is a string
    or an :class:`Image`, :class:`Video` or :class:`Document` without caption.
    With the ``"fit"`` policy 4 to 10 buttons are sent as a list instead.
    """

    body: str
    buttons: tuple[Button, ...]
    header: Header | None
    footer: str | None
    reply_to: str | None

    def __init__(
        self,
        body: str,
        buttons: Iterable[Button | str],
        *,
        header: Header | None = None,
        footer: str | None = None,
        reply_to: str | None = None,
    ) -> None:
        if isinstance(buttons, (str, Button)):
            raise TypeError("Buttons.buttons must be a list of Button objects or titles")
        items = tuple(_button(b) for b in buttons)
        if not items:
            raise ValueError("Buttons needs at least one button")
        _unique("Buttons", "button id", [b.id for b in items])
        _unique("Buttons", "button title", [b.title for b in items])
        _set(
            self,
            body=_required_text("Buttons", "body", body),
            buttons=items,
            header=_header("Buttons", header),
            footer=_optional_text("Buttons", "footer", footer),
            reply_to=_optional_wamid("Buttons", reply_to),
        )

    def content(self) -> dict[str, Any]:
        interactive: dict[str, Any] = {"type": "button"}
        if self.header is not None:
            interactive["header"] = header_object(self.header)
        interactive["body"] = {"text": self.body}
        _put(interactive, footer=_text_object(self.footer))
        interactive["action"] = {"buttons": [b.to_dict() for b in self.buttons]}
        return {"type": "interactive", "interactive": interactive}


def _unique(owner: str, what: str, values: Sequence[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(
                f"{owner}: the {what} {value[:40]!r} is used twice; each must be unique"
            )
        seen.add(value)


# -- interactive: list ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One choice of a list: ``id`` comes back in the webhook, ``title`` and ``description`` are shown."""

    id: str
    title: str
    description: str | None = None

    def __post_init__(self) -> None:
        _required_text("Row", "id", self.id)
        _required_text("Row", "title", self.title)
        _set(self, description=_optional_text("Row", "description", self.description))

    def to_dict(self) -> dict[str, Any]:
        """The row object of the send payload."""
        return _put({"id": self.id, "title": self.title}, description=self.description)


def _row(value: Row | str) -> Row:
    if isinstance(value, Row):
        return value
    if isinstance(value, str):
        return Row(value, value)
    raise TypeError(f"a list row must be a Row or a str title, not {type(value).__name__}")


@dataclass(frozen=True, slots=True, init=False)
class Section:
    """A titled group of rows in a :class:`ListMenu`.

    The title may be ``None`` only when the list has a single section.
    """

    title: str | None
    rows: tuple[Row, ...]

    def __init__(self, title: str | None, rows: Iterable[Row | str]) -> None:
        if isinstance(rows, (str, Row)):
            raise TypeError("Section.rows must be a list of Row objects or titles")
        items = tuple(_row(r) for r in rows)
        if not items:
            raise ValueError("a Section needs at least one row")
        _set(self, title=_optional_text("Section", "title", title), rows=items)

    def to_dict(self) -> dict[str, Any]:
        """The section object of the send payload."""
        return _put({}, title=self.title) | {"rows": [r.to_dict() for r in self.rows]}


@dataclass(frozen=True, slots=True, init=False)
class ListMenu(Reply):
    """A message with a button that opens a menu of up to 10 rows.

    ``sections_or_rows`` is a list of :class:`Section` objects, or a list of
    :class:`Row` objects / plain titles for a single untitled section.
    ``button`` is the label of the button that opens the menu. A list's
    header can only be text.
    """

    body: str
    button: str
    sections: tuple[Section, ...]
    header: str | None
    footer: str | None
    reply_to: str | None

    def __init__(
        self,
        body: str,
        button: str,
        sections_or_rows: Iterable[Section | Row | str],
        *,
        header: str | None = None,
        footer: str | None = None,
        reply_to: str | None = None,
    ) -> None:
        if isinstance(sections_or_rows, (str, Row, Section)):
            raise TypeError("ListMenu takes a list of Section objects, or of Row objects / titles")
        items = list(sections_or_rows)
        if not items:
            raise ValueError("ListMenu needs at least one row")
        if all(isinstance(item, Section) for item in items):
            sections = tuple(item for item in items if isinstance(item, Section))
        elif any(isinstance(item, Section) for item in items):
            raise TypeError("ListMenu takes either sections or rows, not both mixed")
        else:
            sections = (Section(None, [_row(item) for item in items]),)  # type: ignore[arg-type]
        if len(sections) > 1 and any(s.title is None for s in sections):
            raise ValueError("ListMenu: every section needs a title when there are several")
        _unique("ListMenu", "row id", [row.id for s in sections for row in s.rows])
        if header is not None and not isinstance(header, str):
            raise TypeError("ListMenu.header can only be text")
        _set(
            self,
            body=_required_text("ListMenu", "body", body),
            button=_required_text("ListMenu", "button", button),
            sections=sections,
            header=_optional_text("ListMenu", "header", header),
            footer=_optional_text("ListMenu", "footer", footer),
            reply_to=_optional_wamid("ListMenu", reply_to),
        )

    @property
    def rows(self) -> tuple[Row, ...]:
        """Every row of every section, in order."""
        return tuple(row for section in self.sections for row in section.rows)

    def content(self) -> dict[str, Any]:
        interactive: dict[str, Any] = {"type": "list"}
        if self.header is not None:
            interactive["header"] = {"type": "text", "text": self.header}
        interactive["body"] = {"text": self.body}
        _put(interactive, footer=_text_object(self.footer))
        interactive["action"] = {
            "button": self.button,
            "sections": [s.to_dict() for s in self.sections],
        }
        return {"type": "interactive", "interactive": interactive}


# -- interactive: call-to-action URL ----------------------------------------------------


@dataclass(frozen=True, slots=True, init=False)
class CtaUrl(Reply):
    """A message with one button that opens ``url`` in the browser, labelled ``display_text``."""

    body: str
    display_text: str
    url: str
    header: Header | None
    footer: str | None
    reply_to: str | None

    def __init__(
        self,
        body: str,
        display_text: str,
        url: str,
        *,
        header: Header | None = None,
        footer: str | None = None,
        reply_to: str | None = None,
    ) -> None:
        _set(
            self,
            body=_required_text("CtaUrl", "body", body),
            display_text=_required_text("CtaUrl", "display_text", display_text),
            url=_check_url("CtaUrl", "url", url),
            header=_header("CtaUrl", header),
            footer=_optional_text("CtaUrl", "footer", footer),
            reply_to=_optional_wamid("CtaUrl", reply_to),
        )

    def content(self) -> dict[str, Any]:
        interactive: dict[str, Any] = {"type": "cta_url"}
        if self.header is not None:
            interactive["header"] = header_object(self.header)
        interactive["body"] = {"text": self.body}
        _put(interactive, footer=_text_object(self.footer))
        interactive["action"] = {
            "name": "cta_url",
            "parameters": {"display_text": self.display_text, "url": self.url},
        }
        return {"type": "interactive", "interactive": interactive}


# -- location, contacts, reaction ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Location(Reply):
    """A map pin at ``latitude``, ``longitude`` (decimal degrees), optionally named."""

    latitude: float
    longitude: float
    _: KW_ONLY
    name: str | None = None
    address: str | None = None
    reply_to: str | None = None

    def __post_init__(self) -> None:
        for field, value, bound in (
            ("latitude", self.latitude, 90),
            ("longitude", self.longitude, 180),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Location.{field} must be a number, not {type(value).__name__}")
            if not math.isfinite(value) or not -bound <= value <= bound:
                raise ValueError(f"Location.{field} must be between -{bound} and {bound}")
        _set(
            self,
            name=_optional_text("Location", "name", self.name),
            address=_optional_text("Location", "address", self.address),
        )
        _optional_wamid("Location", self.reply_to)

    def content(self) -> dict[str, Any]:
        location = _put(
            {"latitude": self.latitude, "longitude": self.longitude},
            name=self.name,
            address=self.address,
        )
        return {"type": "location", "location": location}


def _entries(
    owner: str, field: str, key: str, values: Iterable[str | Mapping[str, Any]]
) -> tuple[dict[str, Any], ...]:
    if isinstance(values, (str, Mapping)):
        values = [values]
    entries = []
    for value in values:
        if isinstance(value, str):
            entries.append({key: _required_text(owner, field, value)})
        elif isinstance(value, Mapping):
            if not value.get(key):
                raise ValueError(f"{owner}.{field}: each entry needs a {key!r}")
            entries.append({k: v for k, v in value.items() if v is not None})
        else:
            raise TypeError(f"{owner}.{field} entries must be strings or dicts")
    return tuple(entries)


@dataclass(frozen=True, slots=True, init=False)
class Contact:
    """One contact card of a :class:`Contacts` message.

    ``name`` is the full name as shown. ``phones``, ``emails`` and ``urls``
    take strings, or dicts with Meta's keys (``{"phone": "+1...",
    "type": "WORK", "wa_id": "1..."}``: with a ``wa_id`` WhatsApp shows a
    *Message* button). ``addresses`` are dicts with Meta's address keys.
    """

    name: str
    first_name: str | None
    last_name: str | None
    middle_name: str | None
    prefix: str | None
    suffix: str | None
    phones: tuple[dict[str, Any], ...]
    emails: tuple[dict[str, Any], ...]
    urls: tuple[dict[str, Any], ...]
    addresses: tuple[dict[str, Any], ...]
    company: str | None
    department: str | None
    title: str | None
    birthday: str | None

    def __init__(
        self,
        name: str,
        *,
        phones: Iterable[str | Mapping[str, Any]] = (),
        emails: Iterable[str | Mapping[str, Any]] = (),
        urls: Iterable[str | Mapping[str, Any]] = (),
        addresses: Iterable[Mapping[str, Any]] = (),
        first_name: str | None = None,
        last_name: str | None = None,
        middle_name: str | None = None,
        prefix: str | None = None,
        suffix: str | None = None,
        company: str | None = None,
        department: str | None = None,
        title: str | None = None,
        birthday: str | None = None,
    ) -> None:
        if isinstance(addresses, Mapping):
            addresses = [addresses]
        for address in addresses:
            if not isinstance(address, Mapping):
                raise TypeError("Contact.addresses entries must be dicts")
        _set(
            self,
            name=_required_text("Contact", "name", name),
            first_name=_optional_text("Contact", "first_name", first_name),
            last_name=_optional_text("Contact", "last_name", last_name),
            middle_name=_optional_text("Contact", "middle_name", middle_name),
            prefix=_optional_text("Contact", "prefix", prefix),
            suffix=_optional_text("Contact", "suffix", suffix),
            phones=_entries("Contact", "phones", "phone", phones),
            emails=_entries("Contact", "emails", "email", emails),
            urls=_entries("Contact", "urls", "url", urls),
            addresses=tuple({k: v for k, v in a.items() if v is not None} for a in addresses),
            company=_optional_text("Contact", "company", company),
            department=_optional_text("Contact", "department", department),
            title=_optional_text("Contact", "title", title),
            birthday=_optional_text("Contact", "birthday", birthday),
        )

    def to_dict(self) -> dict[str, Any]:
        """The contact object of the send payload."""
        parts = {
            "first_name": self.first_name,
            "last_name": self.last_name,
            "middle_name": self.middle_name,
            "prefix": self.prefix,
            "suffix": self.suffix,
        }
        if all(value is None for value in parts.values()):
            # Meta wants at least one name part besides formatted_name.
            parts["first_name"] = self.name
        contact: dict[str, Any] = {"name": _put({"formatted_name": self.name}, **parts)}
        org = _put({}, company=self.company, department=self.department, title=self.title)
        _put(
            contact,
            org=org or None,
            phones=[dict(p) for p in self.phones] or None,
            emails=[dict(e) for e in self.emails] or None,
            urls=[dict(u) for u in self.urls] or None,
            addresses=[dict(a) for a in self.addresses] or None,
            birthday=self.birthday,
        )
        return contact


@dataclass(frozen=True, slots=True, init=False)
class Contacts(Reply):
    """One message carrying one or more contact cards.

    ``Contacts(Contact("Ana Díaz", phones=["+5491155550000"]), Contact(...))``
    """

    contacts: tuple[Contact, ...]
    reply_to: str | None

    def __init__(self, *contacts: Contact, reply_to: str | None = None) -> None:
        if len(contacts) == 1 and isinstance(contacts[0], (list, tuple)):
            contacts = tuple(contacts[0])
        if not contacts:
            raise ValueError("Contacts needs at least one Contact")
        for contact in contacts:
            if not isinstance(contact, Contact):
                raise TypeError(f"Contacts takes Contact objects, not {type(contact).__name__}")
        _set(self, contacts=tuple(contacts), reply_to=_optional_wamid("Contacts", reply_to))

    def content(self) -> dict[str, Any]:
        return {"type": "contacts", "contacts": [c.to_dict() for c in self.contacts]}


@dataclass(frozen=True, slots=True)
class React(Reply):
    """An emoji reaction to a message.

    ``message_id=None`` reacts to the message being answered (inside a
    webhook); ``emoji=""`` removes an earlier reaction. A reaction cannot
    quote a message, so it has no ``reply_to``.
    """

    emoji: str
    message_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.emoji, str):
            raise TypeError('React.emoji must be a string ("" removes a reaction)')
        if self.message_id is not None:
            _required_text("React", "message_id", self.message_id)

    def answering(self, message_id: str) -> React:
        """This reaction aimed at ``message_id`` when it has no target of its own."""
        return self if self.message_id is not None else React(self.emoji, message_id)

    def content(self) -> dict[str, Any]:
        if self.message_id is None:
            raise ValueError(
                "React(message_id=None) reacts to the message being answered; outside "
                "a webhook pass the wamid to react to as message_id="
            )
        return {
            "type": "reaction",
            "reaction": {"message_id": self.message_id, "emoji": self.emoji},
        }


# -- templates ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, init=False)
class Template(Reply):
    """A pre-approved message template: the only thing that reaches a user
    outside the 24-hour customer-service window.

    ``components`` are Meta's component objects, e.g.
    ``{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}``;
    :meth:`with_body` builds the common body-text case.
    """

    name: str
    language: str
    components: tuple[Mapping[str, Any], ...]
    reply_to: str | None

    def __init__(
        self,
        name: str,
        language: str = "en_US",
        components: Iterable[Mapping[str, Any]] = (),
        *,
        reply_to: str | None = None,
    ) -> None:
        if isinstance(components, Mapping):
            components = [components]
        items = tuple(components)
        for index, component in enumerate(items):
            if not isinstance(component, Mapping) or not component.get("type"):
                raise ValueError(
                    f"Template.components[{index}] must be a dict with a 'type' "
                    "(header, body, button)"
                )
        _set(
            self,
            name=_required_text("Template", "name", name),
            language=_required_text("Template", "language", language),
            components=items,
            reply_to=_optional_wamid("Template", reply_to),
        )

    @classmethod
    def with_body(
        cls,
        name: str,
        params: Iterable[str] = (),
        *,
        language: str = "en_US",
        reply_to: str | None = None,
    ) -> Template:
        """A template whose body variables ``{{1}}``, ``{{2}}``... are ``params`` in order."""
        values = [str(p) for p in params]
        components: list[Mapping[str, Any]] = []
        if values:
            parameters = [{"type": "text", "text": value} for value in values]
            components.append({"type": "body", "parameters": parameters})
        return cls(name, language, components, reply_to=reply_to)

    def content(self) -> dict[str, Any]:
        template: dict[str, Any] = {"name": self.name, "language": {"code": self.language}}
        if self.components:
            template["components"] = [_strip_none(dict(c)) for c in self.components]
        return {"type": "template", "template": template}


def _strip_none(value: Any) -> Any:
    """Drop ``None`` values from nested dicts and lists: never send ``null``."""
    if isinstance(value, Mapping):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_strip_none(v) for v in value if v is not None]
    return value

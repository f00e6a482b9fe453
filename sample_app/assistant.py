"""The demo assistant: shows what a cel_whatsapp bot can do.

- ``menu`` (or hi/hello/help/start): a text, then reply buttons;
- the buttons: a streamed multi-sentence story, a list of topics, a picture by link;
- a list row: a few streamed sentences about that topic;
- a photo, video, voice note, document or sticker: echoed back by its media id,
  with a reaction on the user's message;
- a location: the same pin sent back;
- any other text: a streamed answer from an OpenAI-compatible model when
  ``OPENAI_MODEL`` is set (see :mod:`sample_app.llm`), else a streamed echo.

It reads what arrived from ``message.raw`` (the message exactly as Meta sent
it), which works with every version of the library's typed model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import requests

from cel_whatsapp import (
    Audio,
    Button,
    Buttons,
    Document,
    Image,
    ListMenu,
    Location,
    Message,
    React,
    Reply,
    Row,
    Section,
    Sticker,
    Video,
)
from cel_whatsapp.core.responder import Assistant, AssistantResult

from .llm import ChatModel, Conversations

logger = logging.getLogger(__name__)

GREETINGS = frozenset({"menu", "hi", "hello", "hey", "help", "start", "hola", "bonjour"})
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
#: Seconds between streamed chunks, to look like a model producing text.
PACE = 0.25

TOPICS: dict[str, tuple[str, str, list[str]]] = {
    "topic:stream": (
        "Stream modes",
        "Sentence, full or direct",
        [
            "In *sentence* mode every sentence goes out as soon as it is complete. ",
            "Abbreviations like Dr. and numbers like 3.5 do not end a sentence. ",
            "In *full* mode the whole answer is sent once; in *direct* mode every chunk is. ",
        ],
    ),
    "topic:rich": (
        "Rich replies",
        "Buttons, lists, media",
        [
            "An assistant can yield text and reply objects in any order. ",
            "Pending text is flushed before a rich reply, so the order is kept. ",
            "Buttons, lists, images, documents, locations and reactions all work. ",
        ],
    ),
    "topic:testing": (
        "Testing kit",
        "pytest fixtures and builders",
        [
            "The *whatsapp* pytest fixture posts signed webhooks to your app. ",
            "A local fake of the Graph API records every reply. ",
            "So a test reads: send a text, assert the answer. ",
        ],
    ),
    "topic:simulator": (
        "This simulator",
        "How this page works",
        [
            "What you type becomes a Meta-shaped webhook, signed with the app secret. ",
            "The bot's replies go through its real Graph API client to a local stand-in for Meta. ",
            "Nothing here needs a Meta account. ",
        ],
    ),
}


def make_assistant(
    *,
    picture_url: Callable[[], str | None],
    model: ChatModel | None = None,
    pace: float | None = None,
) -> Assistant:
    """Build the demo assistant; ``picture_url`` returns where the demo picture is served.

    ``pace`` is the pause between streamed chunks (default :data:`PACE`).
    """
    if pace is None:
        pace = PACE
    conversations = Conversations()
    session = requests.Session()

    def answer(message: Message) -> AssistantResult:
        raw = message.raw
        if message.type == "interactive":
            return _on_choice(_interactive_choice(raw), message, picture_url, pace)
        if message.type == "button":
            button = raw.get("button") or {}
            return _on_choice(
                (str(button.get("payload")), str(button.get("text"))), message, picture_url, pace
            )
        if message.type in MEDIA_KINDS:
            return _echo_media(message, raw.get(message.type) or {})
        if message.type == "location":
            return _echo_location(raw.get("location") or {})
        if message.type == "contacts":
            names = [
                str((c.get("name") or {}).get("formatted_name")) for c in raw.get("contacts") or []
            ]
            return f"Thanks for the contact card of {', '.join(names) or 'someone'}."
        if message.type == "reaction":
            emoji = (raw.get("reaction") or {}).get("emoji")
            return f"Thanks for the {emoji}!" if emoji else None
        if message.text is None:
            return f"I got a {message.type} message. Type *menu* to see what I can do."
        text = message.text.strip()
        if text.lower().strip("!.?") in GREETINGS:
            return _menu(message)
        if model is not None:
            return _ask_model(model, session, conversations, message.lead.id, text)
        return _echo(message.lead.name or "there", text, pace)

    return answer


def _interactive_choice(raw: Mapping[str, Any]) -> tuple[str, str]:
    interactive = raw.get("interactive") or {}
    reply = interactive.get(interactive.get("type") or "") or {}
    return str(reply.get("id", "")), str(reply.get("title", ""))


def _menu(message: Message) -> Iterator[str | Reply]:
    name = message.lead.name or "there"
    yield f"Hi {name}! I am the cel_whatsapp demo bot. "
    yield "Pick something to try:"
    yield Buttons(
        "Each button sends a button_reply webhook back to me.",
        [
            Button("story", "Stream a story"),
            Button("topics", "Show a list"),
            Button("picture", "Send a picture"),
        ],
        header="What can I show you?",
        footer="Or send a photo or a location",
    )


def _on_choice(
    choice: tuple[str, str],
    message: Message,
    picture_url: Callable[[], str | None],
    pace: float,
) -> AssistantResult:
    choice_id, title = choice
    if choice_id == "story":
        return _paced(
            [
                "Here is a story, streamed the way a language model writes. ",
                "Every sentence you see arrived as its own WhatsApp message. ",
                "The assistant yielded small chunks of text, a few words at a time. ",
                "The connector cut them at sentence ends and sent each one at once. ",
                "Type *menu* to go back.",
            ],
            pace,
        )
    if choice_id == "topics":
        library = [Row(key, title, about) for key, (title, about, _) in TOPICS.items()]
        return ListMenu(
            "What would you like to know about?",
            "Topics",
            [Section("The library", library[:-1]), Section("This page", library[-1:])],
            header="Topics",
        )
    if choice_id == "picture":
        link = picture_url()
        if not link:
            return "I do not know my own address yet; open the page and try again."
        return Image(link=link, caption="An image sent by link.")
    if choice_id in TOPICS:
        return _paced([*TOPICS[choice_id][2], "Type *menu* to go back."], pace)
    return f"You picked “{title}” ({choice_id}). Type *menu* to see the menu."


def _echo_media(message: Message, media: Mapping[str, Any]) -> Iterator[str | Reply]:
    kind = message.type
    media_id = media.get("id")
    size_hint = media.get("mime_type") or "unknown type"
    yield React("\N{THUMBS UP SIGN}")  # no message_id: the message being answered
    label = "voice note" if kind == "audio" and media.get("voice") else kind
    yield f"Got your {label} ({size_hint}). Here it is back:"
    if media_id:
        yield _same_media(kind, str(media_id), f"Your {label}, echoed by media id", media)


def _same_media(kind: str, media_id: str, caption: str, media: Mapping[str, Any]) -> Reply:
    if kind == "image":
        return Image(media_id=media_id, caption=caption)
    if kind == "video":
        return Video(media_id=media_id, caption=caption)
    if kind == "audio":
        return Audio(media_id=media_id, voice=bool(media.get("voice")))
    if kind == "document":
        return Document(media_id=media_id, caption=caption, filename=media.get("filename"))
    return Sticker(media_id=media_id)


def _echo_location(place: Mapping[str, Any]) -> Iterator[str | Reply]:
    latitude, longitude = place.get("latitude"), place.get("longitude")
    if not isinstance(latitude, (int, float)) or not isinstance(longitude, (int, float)):
        yield "That location had no coordinates."
        return
    where = place.get("name") or "there"
    yield f"You are at {latitude:.4f}, {longitude:.4f} ({where}). "
    yield "Here is the same pin:"
    yield Location(
        latitude, longitude, name=place.get("name") or "Your location", address=place.get("address")
    )


def _echo(name: str, text: str, pace: float) -> Iterator[str]:
    words = len(text.split())
    yield from _paced(
        [
            f"Hi {name}! ",
            f"You wrote {words} word{'s' if words != 1 else ''}. ",
            "Here it is back: ",
            f"{text}\n",
            "Each sentence of this answer ",
            "arrives as its own WhatsApp message. ",
            "Type *menu* to see what I can do.",
        ],
        pace,
    )


def _paced(chunks: list[str], pace: float) -> Iterator[str]:
    for chunk in chunks:
        if pace:
            time.sleep(pace)
        yield chunk


def _ask_model(
    model: ChatModel,
    session: requests.Session,
    conversations: Conversations,
    user: str,
    text: str,
) -> Iterator[str]:
    history = conversations.add(user, "user", text)
    answer: list[str] = []
    try:
        for chunk in model.stream(history, session):
            answer.append(chunk)
            yield chunk
    except requests.RequestException as exc:
        logger.warning("the language model failed: %s", type(exc).__name__)
        if not answer:
            yield "Sorry, the language model cannot be reached right now."
        return
    if answer:
        conversations.add(user, "assistant", "".join(answer))

"""Documented defaults and the names of every configuration key.

Values are resolved in layers: an explicit keyword argument wins; a missing one
falls back to the ``WHATSAPP_*`` key in ``app.config``, then to the environment
variable of the same name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Final, Literal, cast

from .errors import ConfigurationError

#: Graph API version used when none is given. Meta supports each version for
#: about two years; override with ``api_version=`` or ``WHATSAPP_API_VERSION``.
DEFAULT_API_VERSION: Final = "v25.0"
#: Where the Graph API lives. Tests and the simulator point ``base_url`` elsewhere.
GRAPH_HOST: Final = "https://graph.facebook.com"
DEFAULT_ENDPOINT_PREFIX: Final = "/whatsapp"
DEFAULT_BLUEPRINT_NAME: Final = "whatsapp"

#: WhatsApp refuses text bodies longer than this many characters.
TEXT_LIMIT: Final = 4096
#: What to do with a reply over one of WhatsApp's limits (see cel_whatsapp.core.limits):
#: make it fit, or raise. Accepted by ``WhatsappConnector(limits=...)``.
LimitPolicy = Literal["strict", "fit"]
POLICIES: Final = ("strict", "fit")
DEFAULT_POLICY: Final[LimitPolicy] = "fit"
#: (connect, read) seconds for every Graph API call.
DEFAULT_TIMEOUT: Final = (3.05, 20.0)
#: Meta's webhook payloads stay below 3 MB; a little above that is refused with 413.
DEFAULT_MAX_BODY_BYTES: Final = 3_500_000
#: ``download_media`` reads at most this many bytes: WhatsApp's largest media (documents).
DEFAULT_MEDIA_MAX_BYTES: Final = 100 * 1024 * 1024

# -- reliability: deduplication, background dispatch, retries --------------------
#: How long a message id is remembered: Meta redelivers an unacknowledged
#: webhook for up to 7 days.
DEFAULT_DEDUP_TTL: Final = 7 * 24 * 3600.0
#: How many message ids ``InMemoryStore`` keeps at most (oldest forgotten first).
DEFAULT_DEDUP_MAX_ENTRIES: Final = 100_000
#: Background dispatch: the most threads answering messages in each process.
#: They start as the answers in flight need them, and each mostly waits (on
#: the assistant, and on the Graph API: 100-300 ms a send) with the GIL
#: released, so a worker answers about ``max_workers / seconds per answer``
#: messages a second: 64 threads and 150 ms sends, about 400 a second.
#: A thread that has answered keeps about 45 KiB resident (see docs/reliability.rst).
DEFAULT_MAX_WORKERS: Final = 64
#: ``max_workers`` above this is refused (a typo, not a pool size).
MAX_WORKERS_LIMIT: Final = 1024
#: Connections kept open to the Graph API by the ``requests.Session`` a
#: connector builds: one per background thread that may send at once, so
#: that none is closed after its send and opened again (a TLS handshake).
DEFAULT_GRAPH_POOL_SIZE: Final = DEFAULT_MAX_WORKERS
#: Background dispatch: messages accepted but not yet answered, per process.
#: Past this the webhook waits ``DEFAULT_FULL_TIMEOUT`` seconds for room, then
#: answers 503 so that Meta delivers the refused messages again later.
DEFAULT_MAX_PENDING: Final = 1000
DEFAULT_FULL_TIMEOUT: Final = 1.0
#: Seconds a worker's hold on a lead (with ``RedisStore``) lasts unless renewed.
DEFAULT_LEASE_TTL: Final = 30.0
#: Seconds given to pending answers when the process shuts down.
DEFAULT_SHUTDOWN_TIMEOUT: Final = 25.0
# -- reliability: stuck assistants and runaway answers ---------------------------
#: Background dispatch: an answer still running after this many seconds is
#: logged as slow (with the message id), again each time its time doubles; when
#: every worker thread holds such an answer, an error says the pool is full.
DEFAULT_SLOW_ANSWER_AFTER: Final = 120.0
#: The most messages one answer may send (text pieces and rich replies, not
#: read receipts); past that the assistant's generator is closed with a
#: warning. In the default ``"sentence"`` stream mode every sentence is a
#: message, so a long real answer (10,000 characters of short sentences) is
#: about 240 messages, and 250 lets it through; a runaway generator, say
#: 100,000 one-token chunks in ``"direct"`` mode, stops after 250 instead of
#: 100,000. Past a short burst WhatsApp delivers about one message every 6
#: seconds to one user (pair rate limit, error 131056): apps that stream
#: ``"direct"`` or want a tighter bound set it lower (50 is a good value there).
DEFAULT_MAX_MESSAGES_PER_ANSWER: Final = 250
#: Graph API sends: attempts per request (the first included), and the time all
#: attempts and waits of one request may take together.
DEFAULT_RETRY_ATTEMPTS: Final = 5
DEFAULT_RETRY_TOTAL_TIME: Final = 60.0
# Limits against amplification (issue 11): what one POST may make us do and remember.
#: Items one webhook POST may hold: entries, changes, the elements of each
#: change's ``messages``, ``statuses``, ``errors``, ``contacts`` and
#: ``message_echoes``, and the elements of the lists parsed inside one update
#: (a ``contacts`` message's cards and their phones and emails, an order's
#: product items, a message's or status's ``errors``). Meta sends at most 1,000
#: updates per POST; even each in its own entry and change, with a contact each,
#: that is 4,000 items. More is refused with 413 before any item is parsed.
DEFAULT_MAX_ITEMS_PER_POST: Final = 10_000
#: How many status-update keys ``InMemoryStore`` keeps at most, apart from the
#: message ids (``DEFAULT_DEDUP_MAX_ENTRIES``): every message sent yields several
#: statuses (sent, delivered, read), which must not push message ids out.
DEFAULT_DEDUP_MAX_STATUS_ENTRIES: Final = 100_000

# -- Celery dispatch (cel_whatsapp.celery) -------------------------------------------
#: A send the Graph API holds back longer than this many seconds (130429 with
#: ``Retry-After``, 131056 for one user) is not waited for in a Celery worker:
#: the rest of the answer is sent by a retry of the job with that countdown.
DEFAULT_DEFER_WAITS_OVER: Final = 2.0
#: A message at the head of its lead's queue this many seconds after it was
#: queued, whose job never started (purged by hand, say), is skipped in that
#: lead's order instead of blocking it.
DEFAULT_ORDER_TIMEOUT: Final = 600.0
#: Seconds between a job's tries to take its lead's turn: this, times one more
#: than the messages queued before it, at most ``JOB_POLL_MAX``.
JOB_POLL_STEP: Final = 0.1
JOB_POLL_MAX: Final = 2.0
#: Celery's default ``visibility_timeout`` of the Redis broker, in seconds: a
#: job unacknowledged that long is delivered again. Countdowns stay below half.
REDIS_VISIBILITY_TIMEOUT: Final = 3600.0

#: Configuration keys, read from ``app.config`` and then from ``os.environ``.
TOKEN_KEY: Final = "WHATSAPP_TOKEN"  # noqa: S105 - a key name, not a secret
PHONE_NUMBER_ID_KEY: Final = "WHATSAPP_PHONE_NUMBER_ID"
VERIFY_TOKEN_KEY: Final = "WHATSAPP_VERIFY_TOKEN"  # noqa: S105 - a key name, not a secret
APP_SECRET_KEY: Final = "WHATSAPP_APP_SECRET"  # noqa: S105 - a key name, not a secret
API_VERSION_KEY: Final = "WHATSAPP_API_VERSION"
BASE_URL_KEY: Final = "WHATSAPP_BASE_URL"

#: Where each required value is found in Meta's App Dashboard, for error messages.
WHERE_TO_FIND: Final[Mapping[str, str]] = {
    TOKEN_KEY: (
        "an access token: App Dashboard > WhatsApp > API Setup (temporary), or a "
        "System User token from Business Settings (permanent)"
    ),
    PHONE_NUMBER_ID_KEY: (
        "the business phone number's ID (not the number itself): "
        "App Dashboard > WhatsApp > API Setup > Phone number ID"
    ),
    VERIFY_TOKEN_KEY: (
        "any secret string you choose; enter the same one in "
        "App Dashboard > WhatsApp > Configuration > Webhook > Verify token"
    ),
}


def lookup(key: str, config: Mapping[str, Any] | None = None) -> str | None:
    """Return ``config[key]``, else ``os.environ[key]``, else ``None``.

    Empty strings count as missing, so an unset variable exported as ``""``
    does not silently become a credential.
    """
    if config is not None:
        value = config.get(key)
        if value not in (None, ""):
            return str(value)
    value = os.environ.get(key)
    return value or None


# C0 and C1 control characters: a line break, a tab, a NUL...
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# What an HTTP header value can carry everywhere: printable ASCII and the space.
_HEADER_TEXT = re.compile(r"[ -~]*")


def clean_secret(name: str, value: object, *, header: bool = False) -> str:
    """``value`` without the whitespace around it, or :class:`ConfigurationError`.

    A secret read from a file or a copied line often ends with a line break;
    that is dropped. A control character inside it is refused, and with
    ``header=True`` (the access token, sent as ``Authorization: Bearer ...``)
    so is anything but printable ASCII. The message names the setting
    (``name``) and never shows the value.
    """
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string, not {type(value).__name__}")
    text = value.strip()
    if _CONTROL.search(text):
        raise ConfigurationError(
            f"{name} contains a control character (a line break, a tab, a NUL...) "
            "inside it; set it again as a single line"
        )
    if header and not _HEADER_TEXT.fullmatch(text):
        raise ConfigurationError(
            f"{name} contains characters other than printable ASCII and cannot be sent "
            "in an HTTP header; copy it again from Meta's dashboard"
        )
    return text


def check_policy(policy: str) -> LimitPolicy:
    """Return ``policy`` if it names a limits policy, else raise :class:`ValueError`."""
    if policy not in POLICIES:
        raise ValueError(f"limits must be 'fit' or 'strict', not {policy!r}")
    return cast(LimitPolicy, policy)


def graph_base_url(api_version: str, host: str = GRAPH_HOST) -> str:
    """Build ``https://graph.facebook.com/v25.0`` from a version like ``"v25.0"`` or ``"25.0"``."""
    version = api_version.strip().strip("/")
    if not version.startswith("v"):
        version = "v" + version
    return f"{host.rstrip('/')}/{version}"

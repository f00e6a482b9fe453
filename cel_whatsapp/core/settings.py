"""One resolved configuration: who the business is at Meta, and where the Graph API is.

Values come in layers (:mod:`cel_whatsapp.config`): an explicit argument wins;
a missing one falls back to the ``WHATSAPP_*`` key of the app's config, then
to the environment variable of the same name. Secrets are checked on the way
in (:func:`cel_whatsapp.config.clean_secret`) and never shown.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .. import config
from ..errors import ConfigurationError

_ID = re.compile(r"[0-9A-Za-z_-]+")

_SECRETS = {
    config.TOKEN_KEY: True,  # sent as a header: printable ASCII only
    config.VERIFY_TOKEN_KEY: False,
    config.APP_SECRET_KEY: False,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Credentials and addresses of one deployment.

    ``app_secret`` is ``None`` when none was configured and ``""`` when the
    constructor was told explicitly not to check signatures.
    """

    token: str | None = field(default=None, repr=False)
    #: The default sender: the first of ``phone_number_ids``.
    phone_number_id: str | None = None
    #: Every business number whose updates are handled (``phone_number_id`` first).
    phone_number_ids: tuple[str, ...] = ()
    #: Tokens of numbers that do not use ``token`` (another WhatsApp Business Account).
    tokens: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    verify_token: str | None = field(default=None, repr=False)
    app_secret: str | None = field(default=None, repr=False)
    api_version: str | None = None
    #: The Graph API root with its version, e.g. ``https://graph.facebook.com/v25.0``.
    base_url: str = field(default_factory=lambda: config.graph_base_url(config.DEFAULT_API_VERSION))

    def __post_init__(self) -> None:
        # Either field may be given: each is completed from the other.
        ids = self.phone_number_ids
        if self.phone_number_id and not ids:
            ids = (self.phone_number_id,)
        elif ids and self.phone_number_id and ids[0] != self.phone_number_id:
            ids = (self.phone_number_id, *(i for i in ids if i != self.phone_number_id))
        object.__setattr__(self, "phone_number_ids", tuple(ids))
        object.__setattr__(self, "phone_number_id", ids[0] if ids else None)
        unknown = set(self.tokens) - set(ids)
        if unknown:
            raise ConfigurationError(
                "tokens= names phone number ids that are not listed in phone_number_id: "
                + ", ".join(sorted(unknown))
            )
        object.__setattr__(self, "tokens", MappingProxyType(dict(self.tokens)))

    def __repr__(self) -> str:
        numbers = (
            repr(self.phone_number_id)
            if len(self.phone_number_ids) < 2
            else repr(self.phone_number_ids)
        )
        return (
            f"Settings(phone_number_id={numbers}, base_url={self.base_url!r}, "
            "token=***, verify_token=***, app_secret=***)"
        )

    def sender(self, phone_number_id: str | None = None) -> str:
        """The business number to send from: ``phone_number_id`` if listed, else the default.

        Raises :class:`ValueError` for a number that is not one of
        ``phone_number_ids``, and :class:`ConfigurationError` when none is set.
        """
        if phone_number_id is None:
            return self.value(config.PHONE_NUMBER_ID_KEY)
        if phone_number_id not in self.phone_number_ids:
            listed = ", ".join(self.phone_number_ids) or "none"
            raise ValueError(
                f"phone number id {phone_number_id!r} is not one of this connector's "
                f"numbers ({listed}); add it to phone_number_id"
            )
        return phone_number_id

    def token_for(self, phone_number_id: str) -> str:
        """The access token for sending from ``phone_number_id``."""
        return self.tokens.get(phone_number_id) or self.value(config.TOKEN_KEY)

    @property
    def url(self) -> str:
        """Where messages are sent: ``{base_url}/{phone_number_id}/messages``."""
        return f"{self.base_url}/{self.phone_number_id}/messages"

    @property
    def signed(self) -> bool:
        """Whether webhook POSTs must carry a valid ``X-Hub-Signature-256``."""
        return bool(self.app_secret)

    def value(self, key: str) -> str:
        """The value of the required setting ``key`` (``config.TOKEN_KEY``...), or
        :class:`ConfigurationError` saying where to find it."""
        value = self._values().get(key)
        if not value:
            self.require(key)
        return str(value)

    def _values(self) -> dict[str, str | None]:
        return {
            config.TOKEN_KEY: self.token,
            config.PHONE_NUMBER_ID_KEY: self.phone_number_id,
            config.VERIFY_TOKEN_KEY: self.verify_token,
        }

    def require(self, *keys: str, who: str = "WhatsappConnector") -> Settings:
        """Return ``self``, or raise :class:`ConfigurationError` naming what is missing.

        ``keys`` are configuration key names (``config.TOKEN_KEY``...); the
        message says where each is found in Meta's dashboard.
        """
        values = self._values()
        missing = [key for key in keys if not values.get(key)]
        if missing:
            lines = [f"  {key}: {config.WHERE_TO_FIND[key]}" for key in missing]
            raise ConfigurationError(
                f"{who} is missing required settings. Pass them to the constructor, or set "
                "them in app.config or the environment:\n" + "\n".join(lines)
            )
        return self


def clean(key: str, value: object) -> str | None:
    """A setting as kept: secrets checked (strings only) and stripped, blank meaning missing."""
    if value is None:
        return None
    if key in _SECRETS:
        return config.clean_secret(key, value, header=_SECRETS[key]) or None
    text = str(value).strip()
    return text or None


def phone_number_ids(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """One id, a comma-separated list (``"111,222"``) or a sequence of ids, as a tuple.

    Blank items are dropped and repeats kept once, in order.
    """
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    ids: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str):
            raise ConfigurationError(f"a phone number id must be a string, not {item!r}")
        text = item.strip()
        if text:
            if not _ID.fullmatch(text):
                # It goes into URL paths: nothing but letters, digits, "-" and "_".
                raise ConfigurationError(
                    f"{text!r} is not a phone number id (Meta's are digits only): "
                    + config.WHERE_TO_FIND[config.PHONE_NUMBER_ID_KEY]
                )
            ids[text] = None
    return tuple(ids)


def clean_tokens(tokens: Mapping[str, str] | None) -> dict[str, str]:
    """Per-number tokens, each checked like ``token`` (the values are never shown)."""
    if not tokens:
        return {}
    cleaned: dict[str, str] = {}
    for number, value in tokens.items():
        [key] = phone_number_ids(number) or ("",)
        token = clean(config.TOKEN_KEY, value)
        if not key or not token:
            raise ConfigurationError(
                "tokens= maps a phone number id to its access token; one item has an empty id or token"
            )
        cleaned[key] = token
    return cleaned


def resolve_settings(
    *,
    token: str | None = None,
    phone_number_id: str | Iterable[str] | None = None,
    tokens: Mapping[str, str] | None = None,
    verify_token: str | None = None,
    app_secret: str | None = None,
    api_version: str | None = None,
    base_url: str | None = None,
    app_config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Fill what the arguments leave out from ``app_config``, then ``environ``.

    ``environ`` defaults to ``os.environ``. An explicit ``app_secret=""``
    stays ``""`` (no signature check, and no look-up). Nothing is required
    here: call :meth:`Settings.require` for what the caller needs.
    """
    env = os.environ if environ is None else environ

    def raw(key: str) -> Any:
        for source in (app_config, env):
            if source is None:
                continue
            value = source.get(key)
            if value not in (None, ""):
                return value
        return None

    def layered(key: str, explicit: str | None) -> str | None:
        if explicit is not None:
            return clean(key, explicit)
        value = raw(key)
        return None if value is None else clean(key, value)

    numbers = phone_number_ids(
        phone_number_id if phone_number_id is not None else raw(config.PHONE_NUMBER_ID_KEY)
    )

    secret = "" if app_secret == "" else layered(config.APP_SECRET_KEY, app_secret)
    version = layered(config.API_VERSION_KEY, api_version)
    root = layered(config.BASE_URL_KEY, base_url)
    return Settings(
        token=layered(config.TOKEN_KEY, token),
        phone_number_ids=numbers,
        tokens=clean_tokens(tokens),
        verify_token=layered(config.VERIFY_TOKEN_KEY, verify_token),
        app_secret=secret,
        api_version=version,
        base_url=(
            root.rstrip("/")
            if root
            else config.graph_base_url(version or config.DEFAULT_API_VERSION)
        ),
    )

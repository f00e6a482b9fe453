"""One resolved configuration: who the business is at Meta, and where the Graph API is.

Values come in layers (:mod:`cel_whatsapp.config`): an explicit argument wins;
a missing one falls back to the ``WHATSAPP_*`` key of the app's config, then
to the environment variable of the same name. Secrets are checked on the way
in (:func:`cel_whatsapp.config.clean_secret`) and never shown.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import config
from ..errors import ConfigurationError

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
    phone_number_id: str | None = None
    verify_token: str | None = field(default=None, repr=False)
    app_secret: str | None = field(default=None, repr=False)
    api_version: str | None = None
    #: The Graph API root with its version, e.g. ``https://graph.facebook.com/v25.0``.
    base_url: str = field(default_factory=lambda: config.graph_base_url(config.DEFAULT_API_VERSION))

    def __repr__(self) -> str:
        return (
            f"Settings(phone_number_id={self.phone_number_id!r}, base_url={self.base_url!r}, "
            "token=***, verify_token=***, app_secret=***)"
        )

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


def resolve_settings(
    *,
    token: str | None = None,
    phone_number_id: str | None = None,
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

    def layered(key: str, explicit: str | None) -> str | None:
        if explicit is not None:
            return clean(key, explicit)
        for source in (app_config, env):
            if source is None:
                continue
            value = source.get(key)
            if value not in (None, ""):
                return clean(key, value)
        return None

    secret = "" if app_secret == "" else layered(config.APP_SECRET_KEY, app_secret)
    version = layered(config.API_VERSION_KEY, api_version)
    root = layered(config.BASE_URL_KEY, base_url)
    return Settings(
        token=layered(config.TOKEN_KEY, token),
        phone_number_id=layered(config.PHONE_NUMBER_ID_KEY, phone_number_id),
        verify_token=layered(config.VERIFY_TOKEN_KEY, verify_token),
        app_secret=secret,
        api_version=version,
        base_url=(
            root.rstrip("/")
            if root
            else config.graph_base_url(version or config.DEFAULT_API_VERSION)
        ),
    )

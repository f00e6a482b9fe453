"""Where the bearer token may go: the Graph API's own origin and Meta's media hosts.

A media URL comes from a webhook or from Meta's lookup answer; the token goes
with the GET to it, so its host is checked first. URL parsers disagree on odd
input: ``https://127.0.0.1:8443\\@lookaside.fbsbx.com/x`` is a Meta host to
``urllib.parse`` but 127.0.0.1 to urllib3, which makes the connection. So
anything odd (a backslash, whitespace, a control or non-ASCII character,
userinfo, a port other than 443, a host that is not plain lowercase ASCII) is
refused outright, the rest is parsed by urllib3's ``parse_url`` (the parser
requests uses) and must agree with the plain reading, and the URL fetched is
built again from the parts that were checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from urllib3.exceptions import LocationParseError
from urllib3.util import Url, parse_url

__all__ = ["TRUSTED_MEDIA_DOMAINS", "token_url"]

#: Hosts Meta serves media from; a media URL gets our token only when its host
#: is one of these or under one of them (over HTTPS, on port 443), or when it is
#: on the Graph API's own scheme, host and port.
TRUSTED_MEDIA_DOMAINS = ("fbsbx.com", "facebook.com", "fbcdn.net", "whatsapp.net")

# Visible ASCII only: no space, tab, line break, control or non-ASCII character.
_VISIBLE_ASCII = re.compile(r"[!-~]+")
# Where the authority ends, for every parser once backslashes are refused.
_AUTHORITY_END = re.compile(r"[/?#]")
# Lowercase letter-digit-hyphen labels, no IDNA ("xn--") label, no final dot.
_LABEL = r"(?!xn--)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_MEDIA_AUTHORITY = re.compile(rf"(?P<host>{_LABEL}(?:\.{_LABEL})+)(?::443)?")


@dataclass(frozen=True, slots=True)
class _Split:
    """A URL cut the plain way: what comes before ``://``, the authority, the rest."""

    scheme: str
    authority: str
    parsed: Url  # the same URL as urllib3 reads it


def token_url(url: str, base_url: str) -> str | None:
    """The URL to GET with the bearer token in place of ``url``, or ``None``.

    ``None`` means the token must not go there: ``url`` is neither on
    ``base_url``'s scheme, host and port (compared as written) nor an HTTPS
    URL of one of :data:`TRUSTED_MEDIA_DOMAINS`, or it is written in a way
    parsers may read differently. The URL returned holds the checked scheme
    and authority, then the path and query as urllib3 reads them.
    """
    candidate = _split(url)
    if candidate is None:
        return None
    parsed = candidate.parsed
    base = _split(base_url)
    if (
        base is not None
        and (candidate.scheme, candidate.authority) == (base.scheme, base.authority)
        and (parsed.scheme, parsed.host, parsed.port)
        == (base.parsed.scheme, base.parsed.host, base.parsed.port)
    ):
        return f"{candidate.scheme}://{candidate.authority}{parsed.request_uri}"
    match = _MEDIA_AUTHORITY.fullmatch(candidate.authority)
    if candidate.scheme != "https" or match is None:
        return None
    host = match["host"]
    if not _meta_media_host(host) or parsed.host != host or parsed.port not in (None, 443):
        return None
    return f"https://{host}{parsed.request_uri}"


def _split(url: str) -> _Split | None:
    """Cut ``url``, or ``None`` when it holds anything parsers may read differently."""
    if not isinstance(url, str) or not _VISIBLE_ASCII.fullmatch(url) or "\\" in url:
        return None
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in ("https", "http"):
        return None
    end = _AUTHORITY_END.search(rest)
    authority = rest[: end.start()] if end else rest
    if not authority or "@" in authority:
        return None
    try:
        parsed = parse_url(url)
    except LocationParseError:
        return None
    if parsed.auth is not None or parsed.scheme != scheme:
        return None
    return _Split(scheme, authority, parsed)


def _meta_media_host(host: str) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in TRUSTED_MEDIA_DOMAINS)

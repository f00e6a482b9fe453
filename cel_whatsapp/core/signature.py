"""Meta's webhook signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256>``.

The HMAC is computed over the raw request body, byte for byte, with the app
secret (App Dashboard > App settings > Basic > App secret). Never hash
re-serialised JSON: Meta escapes non-ASCII text as ``\\uXXXX`` and any other
serialisation gives another digest.
"""

from __future__ import annotations

import hashlib
import hmac

from ..errors import CelWhatsappError

HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="
_HEX_LENGTH = 64


class SignatureError(CelWhatsappError):
    """The signature header is missing (``missing=True``) or wrong."""

    def __init__(self, message: str, *, missing: bool) -> None:
        super().__init__(message)
        self.missing = missing


def sign(body: bytes, app_secret: str) -> str:
    """The header value Meta would send for ``body``."""
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def verify(body: bytes, header: str | None, app_secret: str) -> None:
    """Raise :class:`SignatureError` unless ``header`` signs ``body``.

    The comparison is constant-time.
    """
    if not header:
        raise SignatureError(f"missing {HEADER} header", missing=True)
    header = header.strip()
    if not header.startswith(_PREFIX) or len(header) != len(_PREFIX) + _HEX_LENGTH:
        raise SignatureError(f"malformed {HEADER} header", missing=False)
    expected = sign(body, app_secret)
    if not hmac.compare_digest(expected.encode("ascii"), header.lower().encode("ascii", "replace")):
        raise SignatureError(f"{HEADER} does not match the body", missing=False)

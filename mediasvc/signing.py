"""Short-lived URLs for private variants, in the form nginx's `secure_link` module checks.

nginx computes `md5("{expires}{uri} {secret}")` (see `secure_link_md5` in the template) and
compares it with the `md5` query argument, then compares `expires` with its clock: a bad
signature is 403, an expired one 410. So the read path never touches the app.

MD5 is what `secure_link` offers; the secret is long and random and the URLs live minutes,
so forging one means a preimage attack on MD5 within its lifetime, which is not practical.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import urlencode


def sign_path(path: str, secret: str, ttl_s: int, *, now: float | None = None) -> str:
    """`path` with `md5` and `expires` arguments valid for `ttl_s` seconds."""
    expires = int(now if now is not None else time.time()) + ttl_s
    signature = _signature(path, str(expires), secret)
    return f"{path}?{urlencode({'md5': signature, 'expires': expires})}"


def _signature(path: str, expires: str, secret: str) -> str:
    digest = hashlib.md5(f"{expires}{path} {secret}".encode(), usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def check_signed_path(path: str, signature: str, expires: str, secret: str) -> bool | None:
    """Whether `signature` and `expires` are what `sign_path` gave for `path`: True, False
    (forged, or missing), or None when they match but the time has passed (as nginx:
    403 for the first, 410 for the last)."""
    if not expires.isascii() or not expires.isdigit() or len(expires) > 12:
        return False
    expected = _signature(path, expires, secret)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return False
    return None if int(expires) < time.time() else True

"""Media ids: 128 random bits, base62, fixed length, so keys and URLs are unguessable."""

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 22  # 62**22 > 2**128, so every 128-bit value fits


def new_media_id() -> str:
    """A fresh id with 128 bits from the OS CSPRNG."""
    n = secrets.randbits(128)
    chars = []
    for _ in range(ID_LENGTH):
        n, r = divmod(n, 62)
        chars.append(_ALPHABET[r])
    return "".join(chars)


def is_media_id(value: str) -> bool:
    """Whether `value` has the shape of an id (cheap check before touching the database)."""
    return len(value) == ID_LENGTH and all(c in _ALPHABET for c in value)

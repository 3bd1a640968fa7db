"""Spaces: media shared with a group (a conversation, a team, a project).

Membership stays in the product: its backend mints tokens whose spaces claim
(`MEDIASVC_JWT_SPACES_CLAIM`, default `spaces`) lists the spaces the user may see. A media
in a space is private; its owner, admins and every token listing the space see it.

This module is the one home of what a space id looks like and how many a token may list;
the upload form, the token verifier and the listing all check against it.
"""

from __future__ import annotations

import re

# The token claim that lists them, unless `MEDIASVC_JWT_SPACES_CLAIM` names another.
DEFAULT_CLAIM = "spaces"
SPACE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
SPACE_ID_RULE = "a space is 1-128 letters, digits, '_', '.', ':' or '-'"

# A token listing more spaces than this is refused (401). The header budget is tighter
# still: a token travels in one header of at most `MAX_HEADER_BYTES`, which holds about
# 1 000 ids of 40 characters. Products mint short-lived tokens per screen, listing what
# the screen shows, not every conversation a user ever joined.
MAX_TOKEN_SPACES = 10_000

# The largest request header nginx (`large_client_header_buffers`) and the app (aiohttp's
# `max_field_size`) accept, so that a token with many spaces gets through both. Kept at
# 64 KiB: nginx's upload limit per token keys on the token's signed part, and a key
# longer than 65 535 bytes would not be counted at all.
MAX_HEADER_BYTES = 64 * 1024


def is_space_id(value: str) -> bool:
    """Whether `value` may name a space (in a form field, a query or a token)."""
    return SPACE_ID.fullmatch(value) is not None

"""Kinds: the rules for one use of images in a product (`post`, `avatar`).

`post` keeps the aspect ratio; `avatar` crops to a square first. Each kind's
`ImageRules` start from the global limits and output in `Settings` and are computed once
when the app is built, not per request.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from mediasvc.config import Settings
from mediasvc.imaging.job import Crop, ImageRules

Kind = Literal["post", "avatar"]
KINDS: tuple[Kind, ...] = ("post", "avatar")
DEFAULT_KIND: Kind = "post"
_CROPS: dict[Kind, Crop] = {"post": "none", "avatar": "square"}


def kind_rules(settings: Settings) -> dict[str, ImageRules]:
    """The image rules of every kind under `settings`."""
    return {kind: replace(settings.image_rules, crop=_CROPS[kind]) for kind in KINDS}

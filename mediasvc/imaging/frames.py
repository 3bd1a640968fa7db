"""The frames of an animation as libvips holds them: one image of pages stacked top to
bottom, each `page-height` rows tall. A still is one page."""

from __future__ import annotations

from typing import Any


def page_height(image: Any) -> int:
    """The height of one frame of `image`."""
    return int(image.get("page-height")) if image.get_typeof("page-height") else image.height


def first_frame(image: Any) -> Any:
    """The first frame of `image` alone (`image` itself when it holds one)."""
    if page_height(image) == image.height:
        return image
    frame = image.crop(0, 0, image.width, page_height(image)).copy()
    frame.remove("page-height")
    return frame

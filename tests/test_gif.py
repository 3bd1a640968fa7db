"""The GIF block walk (`mediasvc.imaging.gif`)."""

from __future__ import annotations

from collections.abc import Callable

import images
import pytest
from imaging_support import truncated

from mediasvc.imaging.gif import walk_gif


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        pytest.param(lambda: images.make_gif(comment="x"), True, id="comment"),
        pytest.param(images.make_gif, False, id="none"),
        # A GIFAR's archive follows the trailer; its bytes are never read as blocks.
        pytest.param(lambda: images.make_gif() + b"\x21\xfe\x01x\x00", False, id="after-trailer"),
        pytest.param(lambda: truncated(images.make_gif()), False, id="truncated"),
        pytest.param(lambda: b"GIF89a", False, id="header-only"),
    ],
)
def test_gif_comment_walk_stops_at_the_trailer(
    factory: Callable[[], bytes], expected: bool
) -> None:
    """A comment extension counts only before the trailer; a damaged file ends the walk quietly."""
    assert walk_gif(factory()).has_comment is expected

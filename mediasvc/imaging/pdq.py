"""PDQ, Meta's perceptual hash, of an upload's decoded pixels: 256 bits that stay within a
few bits of each other for the same picture re-encoded, resized or lightly edited, so the
blocklist finds copies that are not byte-identical (`db.blocklist`).

Computed by the `pdqhash` binding of Meta's reference C++ on the first frame of the
largest variant as decoded (upright, sRGB, 8-bit, the kind's crop applied), flattened on
white, at most `HASH_SIZE` px. PDQ reduces any input to 64x64 by box filters, so a larger
input only costs time: at 1024 px the hash took 26 ms, at 512 px 5 ms with the resize,
within 6 bits of the 1024 px hash (`python -m bench.blocklist`; docs/decisions.md,
"Blocklist and PDQ").

Imported by every worker before it is confined: numpy is loaded then, and its OpenBLAS
starts no thread there (`mediasvc.imaging` sets `OPENBLAS_NUM_THREADS=1`; a thread started
before confinement would stop the worker, `confine.confine_worker`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pdqhash

from mediasvc.imaging.frames import first_frame
from mediasvc.imaging.job import Pdq

# The longest side the pixels are hashed at (see the module docstring).
HASH_SIZE = 512


def pdq_of(image: Any) -> Pdq:
    """The PDQ hash of `image` (a pyvips image in 8-bit sRGB, with or without alpha)."""
    image = first_frame(image)
    if image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    if max(image.width, image.height) > HASH_SIZE:
        image = image.thumbnail_image(HASH_SIZE, height=HASH_SIZE, size="down")
    pixels = np.ndarray(
        buffer=image.write_to_memory(),
        dtype=np.uint8,
        shape=(image.height, image.width, image.bands),
    )
    bits, quality = pdqhash.compute(pixels)
    return Pdq(hash=_hex(bits), quality=int(quality))


def _hex(bits: Any) -> str:
    """The 256 bits `pdqhash` answers (most significant first) as 64 hex digits."""
    packed: bytes = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()
    return packed.hex()

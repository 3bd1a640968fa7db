"""The pure imaging function: one source file in, five clean variant files and facts out.

Runs in worker processes (`imaging.pool`), each set up by `imaging.worker`. Only plain
picklable data crosses in or out. `process` composes the steps, in this order so hostile
files cost little:

1. `imaging.decode`: the header, opened with the one loader that matches the sniffed type,
   is checked against the kind's limits before any pixel is decoded; then one decode,
   shrink-on-load straight to the largest variant, upright, in 8-bit sRGB.
2. `imaging.encode`: each smaller variant is derived from the next larger one in memory,
   and every one is written in the kind's output format with no metadata.
3. The placeholder (`imaging.placeholder`) comes from the smallest variant, the PDQ hash
   (`imaging.pdq`) from the decoded pixels, and the processing report (`imaging.report`)
   from the header already read.
"""

from __future__ import annotations

import errno
import os

import pyvips

from mediasvc.imaging.decode import decode
from mediasvc.imaging.encode import write_variants
from mediasvc.imaging.frames import first_frame
from mediasvc.imaging.job import BadImage, Facts, Job
from mediasvc.imaging.pdq import pdq_of
from mediasvc.imaging.placeholder import dominant_color, rgba_pixels, thumbhash

# Less free space than this where variants are written means a failed save was the disk's fault.
_MIN_FREE_BYTES = 1024 * 1024


def process(job: Job) -> Facts:
    """Turn `job.source` into the variant files in `job.out_dir`, or raise `ImageRejected`."""
    try:
        decoded = decode(job)
        encoded = write_variants(decoded.image, job, decoded.loader)
        small_width, small_height, rgba = rgba_pixels(first_frame(encoded.smallest))
        pdq = pdq_of(decoded.image)
    except pyvips.Error as exc:
        if _disk_full(job.out_dir):
            # libvips reports a failed write like any other error; free space tells them apart.
            raise OSError(errno.ENOSPC, "no space left for variants", job.out_dir) from None
        raise BadImage("The file is damaged or not a decodable image.", reason=str(exc)) from None
    return Facts(
        width=decoded.width,
        height=decoded.height,
        frames=decoded.frames,
        variants=encoded.variants,
        thumbhash=thumbhash(small_width, small_height, rgba),
        dominant_color=dominant_color(rgba),
        processing=decoded.report(
            frames=encoded.frames,
            encoding=encoded.encoding,
            lossless_variants=encoded.lossless_variants,
        ),
        pdq=pdq,
    )


def _disk_full(directory: str) -> bool:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize < _MIN_FREE_BYTES

"""Variant ladders: the sizes a kind's variants are made at, named for how they are shown.

Each kind may declare its own (`sizes` in the kinds file, `kinds`); without one, the default
five below. Code loops over a kind's ladder (`ImageRules.sizes`), never over fixed names.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VariantSpec:
    """One output size: `size` bounds the longest side (square crops: both sides)."""

    name: str
    size: int


Ladder = tuple[VariantSpec, ...]

# The default ladder, smallest first.
VARIANTS: Ladder = (
    VariantSpec("thumbnail", 64),
    VariantSpec("small", 128),
    VariantSpec("medium", 256),
    VariantSpec("large", 512),
    VariantSpec("full", 1024),
)
# The most sizes one ladder may have, and the pattern of a size's name (it becomes the
# variant's file name and its key in the JSON).
MAX_SIZES = 8
SIZE_NAME = r"[a-z0-9_]{1,32}"
# The largest longest side a kind may ask for, unless `MEDIASVC_MAX_VARIANT_SIZE` says.
DEFAULT_MAX_VARIANT_SIZE = 4096


def largest_of(ladder: Ladder) -> VariantSpec:
    """The ladder's largest size: what the source is decoded and resized to first."""
    return max(ladder, key=lambda v: v.size)


# The default ladder's largest size (the bench and tests measure against it).
LARGEST = largest_of(VARIANTS)

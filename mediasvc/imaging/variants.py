"""The variant ladder: five sizes, named for their longest side. Code loops over these."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VariantSpec:
    """One output size: `size` bounds the longest side (avatars: both sides)."""

    name: str
    size: int


VARIANTS: tuple[VariantSpec, ...] = (
    VariantSpec("thumbnail", 64),
    VariantSpec("small", 128),
    VariantSpec("medium", 256),
    VariantSpec("large", 512),
    VariantSpec("full", 1024),
)
LARGEST = max(VARIANTS, key=lambda v: v.size)

"""Kinds: the rules for one use of images in a product (`post`, `avatar`, `chat`, `og`...).

`post` (keep the aspect ratio) and `avatar` (square crop) are built in; operators add or
tighten kinds in the TOML file named by `MEDIASVC_KINDS_FILE`, may turn the built-in ones
off (`builtins = false`) and name the kind of an upload that names none (`default`):

    [kinds.avatar]
    crop = "square"
    max_bytes = 2097152
    min_width = 100
    min_height = 100
    collection_max = 1
    replace = true

A kind inherits the global limits (`MEDIASVC_MAX_UPLOAD_BYTES`, `MAX_PIXELS`, ...) and may
only tighten them. `kind_rules` validates the file's table against them and raises
`ConfigError` with one line naming the key, so a bad file stops startup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from mediasvc.config import ConfigError, Settings
from mediasvc.contract.shapes import KindLimits, Moderation, ModerationFail
from mediasvc.imaging.formats import LOADERS, OUTPUT_FORMATS
from mediasvc.imaging.job import Crop, ImageRules
from mediasvc.imaging.variants import MAX_SIZES, SIZE_NAME, Ladder, VariantSpec

DEFAULT_KIND = "post"
# Types whose every upload may be an animation: AVIF alternates would never be written.
ANIMATED_TYPES = frozenset({"image/gif"})
KIND_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True, slots=True)
class KindRules:
    """Everything one kind decides: what is accepted, how it is encoded, where it goes.

    `replace`: an upload into a full collection retires its oldest item instead of being
    refused; an upload of such a kind without a collection goes to the collection named
    after the kind, so "a new avatar replaces the old one" needs no field at all.
    """

    name: str
    max_bytes: int
    accept: frozenset[str]
    collection_max: int
    replace: bool
    image: ImageRules
    # The kind's own upload budget per user (`budgets`), on top of the global one.
    uploads_per_minute: int | None = None
    # The uploaded file itself is kept (privately, never served) for re-rendering.
    keep_source: bool = False
    # The `sizes` attribute a page pairs with the media's `srcset` (`srcset_sizes`).
    srcset_sizes: str | None = None
    # Uploads wait for the moderation hook, or for an admin, before anyone else sees them.
    moderation: Moderation | None = None
    moderation_fail: ModerationFail = "closed"

    def collection_for(self, asked: str | None) -> str | None:
        """The collection an upload of this kind goes to."""
        return asked if asked is not None or not self.replace else self.name

    def describe(self) -> KindLimits:
        """The effective rules, as `GET /v1/limits` lists them."""
        image = self.image
        return KindLimits(
            max_bytes=self.max_bytes,
            accept=sorted(self.accept),
            min_width=image.min_width,
            min_height=image.min_height,
            max_width=image.max_width,
            max_height=image.max_height,
            max_pixels=image.max_pixels,
            max_frames=image.max_frames,
            animated=image.animated,
            crop=image.crop,
            output=OUTPUT_FORMATS[image.output_format].mime,
            quality=image.quality,
            collection_max=self.collection_max,
            replace=self.replace,
            uploads_per_minute=self.uploads_per_minute,
            sizes={spec.name: spec.size for spec in image.sizes},
            formats=[image.output_format, *image.alternates],
            keep_source=self.keep_source,
            srcset_sizes=self.srcset_sizes,
            moderation=self.moderation,
            moderation_fail=self.moderation_fail,
        )


_BUILTIN_CROPS: dict[str, Crop] = {"post": "none", "avatar": "square"}


def kind_rules(settings: Settings) -> dict[str, KindRules]:
    """Every kind's effective rules: the built-in kinds, then the file's, over the globals."""
    base = KindRules(
        name="",
        max_bytes=settings.max_upload_bytes,
        accept=frozenset(LOADERS),
        collection_max=settings.collection_max,
        replace=False,
        image=settings.image_rules,
    )
    document = settings.kinds_table
    builtins = _BUILTIN_CROPS.items() if document.get("builtins", True) else ()
    kinds = {
        name: replace(base, name=name, image=replace(base.image, crop=crop))
        for name, crop in builtins
    }
    for name, table in document.get("kinds", {}).items():
        start = kinds.get(name, replace(base, name=name))
        kinds[name] = _Parser(name, start, base, settings.max_variant_size).parse(table)
    hooked = sorted(name for name, kind in kinds.items() if kind.moderation == "hook")
    if hooked and settings.moderation_url is None:
        raise ConfigError(
            f'MEDIASVC_KINDS_FILE: kinds.{hooked[0]}.moderation: "hook" needs '
            "MEDIASVC_MODERATION_URL (and MEDIASVC_MODERATION_SECRET)"
        )
    default = default_kind(settings)
    if default not in kinds:
        known = ", ".join(sorted(kinds)) or "none"
        raise ConfigError(
            f"MEDIASVC_KINDS_FILE: default: {default!r} is not a kind (known: {known})"
        )
    return kinds


def variant_names(kinds: Mapping[str, KindRules]) -> list[str]:
    """Every name a variant of some kind may have: the union of their ladders."""
    return sorted({spec.name for kind in kinds.values() for spec in kind.image.sizes})


def srcset_sizes(kinds: Mapping[str, KindRules], kind: str) -> str | None:
    """The `sizes` attribute the kind pairs with its media's `srcset`, if it says one."""
    rules = kinds.get(kind)
    return None if rules is None else rules.srcset_sizes


def default_kind(settings: Settings) -> str:
    """The kind of an upload that names none: the kinds file's `default`, else `post`."""
    name: str = settings.kinds_table.get("default", DEFAULT_KIND)
    return name


class _Parser:
    """Reads one `[kinds.NAME]` table; every error names its key."""

    def __init__(self, name: str, start: KindRules, base: KindRules, max_size: int) -> None:
        self.name, self.start, self.base, self.max_size = name, start, base, max_size

    def fail(self, key: str, message: str) -> ConfigError:
        where = f"kinds.{self.name}" + (f".{key}" if key else "")
        return ConfigError(f"MEDIASVC_KINDS_FILE: {where}: {message}")

    def parse(self, table: object) -> KindRules:
        if not set(self.name) <= KIND_NAME_CHARS or not 0 < len(self.name) <= 32:
            raise self.fail("", "a kind's name is 1-32 of a-z 0-9 _ -")
        if not isinstance(table, dict):
            raise self.fail("", "must be a table")
        unknown = sorted(set(table) - KIND_KEYS)
        if unknown:
            raise self.fail(unknown[0], f"unknown key; known keys: {', '.join(sorted(KIND_KEYS))}")
        image, base = self.start.image, self.base.image
        get = self.getter(table)
        rules = replace(
            self.start,
            max_bytes=get("max_bytes", int, self.start.max_bytes, most=self.base.max_bytes),
            accept=self.accept(table.get("accept")),
            collection_max=get("collection_max", int, self.start.collection_max),
            replace=get("replace", bool, self.start.replace),
            uploads_per_minute=get("uploads_per_minute", int, self.start.uploads_per_minute),
            keep_source=get("keep_source", bool, self.start.keep_source),
            srcset_sizes=get("srcset_sizes", str, self.start.srcset_sizes),
            moderation=get("moderation", str, self.start.moderation, choices=("hook", "review")),
            moderation_fail=get(
                "moderation_fail", str, self.start.moderation_fail, choices=("closed", "open")
            ),
            image=replace(
                image,
                crop=get("crop", str, image.crop, choices=("none", "square")),
                output_format=get(
                    "output", str, image.output_format, choices=tuple(OUTPUT_FORMATS)
                ),
                quality=get("quality", int, image.quality, most=100),
                max_pixels=get("max_pixels", int, image.max_pixels, most=base.max_pixels),
                max_frames=get("max_frames", int, image.max_frames, most=base.max_frames),
                min_width=get("min_width", int, image.min_width),
                min_height=get("min_height", int, image.min_height),
                max_width=get("max_width", int, image.max_width),
                max_height=get("max_height", int, image.max_height),
                animated=get("animated", bool, image.animated),
                sizes=self.sizes(table.get("sizes"), image.sizes),
            ),
        )
        rules = replace(rules, image=replace(rules.image, **self.formats(table, rules)))
        if "moderation_fail" in table and rules.moderation != "hook":
            raise self.fail("moderation_fail", 'applies only with moderation = "hook"')
        if rules.replace and "collection_max" not in table:
            raise self.fail("replace", "needs collection_max (how many items to keep)")
        for low, high in (("min_width", "max_width"), ("min_height", "max_height")):
            top: int | None = getattr(rules.image, high)
            bottom: int = getattr(rules.image, low)
            if top is not None and bottom > top:
                raise self.fail(low, f"is larger than {high}")
        return rules

    def getter(self, table: dict[str, Any]) -> Any:
        def get(
            key: str,
            kind: type,
            default: Any,
            *,
            most: int | None = None,
            choices: tuple[str, ...] = (),
        ) -> Any:
            if key not in table:
                return default
            value = table[key]
            # bool is an int in Python; TOML keeps them apart, and so must we.
            if type(value) is not kind:
                raise self.fail(key, f"must be {_TYPE_NAMES[kind]}")
            if isinstance(value, int) and not isinstance(value, bool) and value < 1:
                raise self.fail(key, "must be a positive integer")
            if most is not None and isinstance(value, int) and value > most:
                raise self.fail(key, f"must be at most {most} (kinds may only tighten)")
            if choices and value not in choices:
                raise self.fail(key, f"must be one of {', '.join(choices)}")
            return value

        return get

    def sizes(self, value: object, default: Ladder) -> Ladder:
        """`sizes = { name = px, ... }`: 1-8 distinct sizes, each at most the maximum."""
        if value is None:
            return default
        if not isinstance(value, dict) or not 0 < len(value) <= MAX_SIZES:
            raise self.fail("sizes", f"must be a table of 1 to {MAX_SIZES} name = pixels")
        for name, size in value.items():
            if not re.fullmatch(SIZE_NAME, name):
                raise self.fail(f"sizes.{name}", "a size's name is 1-32 of a-z 0-9 _")
            if type(size) is not int or not 0 < size <= self.max_size:
                raise self.fail(
                    f"sizes.{name}",
                    f"must be an integer from 1 to {self.max_size} (MEDIASVC_MAX_VARIANT_SIZE)",
                )
        if len(set(value.values())) < len(value):
            raise self.fail("sizes", "two sizes are the same; each name needs its own size")
        ladder = sorted(
            (VariantSpec(name, size) for name, size in value.items()), key=lambda spec: spec.size
        )
        return tuple(ladder)

    def formats(self, table: dict[str, Any], rules: KindRules) -> dict[str, Any]:
        """`formats = ["webp", "avif"]`: the output format, then those written beside it."""
        value = table.get("formats")
        if value is None:
            return {}
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail("formats", "must be a list of format names")
        unknown = sorted(set(value) - set(OUTPUT_FORMATS))
        if unknown:
            raise self.fail("formats", f"unknown format {unknown[0]!r}; known: webp, avif")
        if value not in (["webp"], ["webp", "avif"]):
            raise self.fail("formats", 'must be ["webp"] or ["webp", "avif"]')
        if "output" in table and table["output"] != "webp":
            raise self.fail("formats", "needs webp output (an output = jpeg kind stays JPEG)")
        if value[1:] and rules.image.animated and rules.accept <= ANIMATED_TYPES:
            raise self.fail(
                "formats", "this kind takes only animations, which stay animated WebP only"
            )
        return {"output_format": "webp", "alternates": tuple(value[1:])}

    def accept(self, value: object) -> frozenset[str]:
        if value is None:
            return self.start.accept
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.fail("accept", "must be a non-empty list of MIME types")
        unknown = sorted(set(value) - set(LOADERS))
        if unknown:
            raise self.fail(
                "accept", f"{unknown[0]} is not accepted at all; choose from {', '.join(LOADERS)}"
            )
        return frozenset(value)


# The keys of a `[kinds.NAME]` table: the members `KindRules.describe` answers with.
KIND_KEYS = frozenset(KindLimits.model_fields)

_TYPE_NAMES = {int: "an integer", bool: "true or false", str: "a string"}

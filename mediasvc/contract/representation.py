"""A media as the API and the webhooks show it (`contract.shapes`), and where a client
fetches each variant. Below the web layer: the events' outbox uses it too.

Public variants have plain URLs under `MEDIASVC_PUBLIC_MEDIA_URL`; private ones get
short-lived signed URLs that nginx verifies itself (`secure_link`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mediasvc.config import Settings
from mediasvc.contract import shapes
from mediasvc.imaging.formats import OUTPUT_FORMATS
from mediasvc.imaging.job import ImageRules
from mediasvc.keys import PRIVATE_PREFIX, is_private, variant_key
from mediasvc.models import Media, StoredVariant
from mediasvc.signing import sign_path


def variant_url(key: str, settings: Settings) -> str:
    """Where a client fetches a stored variant: its plain URL, or a signed one if private."""
    if is_private(key):
        # nginx checks the signature over the path it sees, so only the path is signed;
        # a scheme and host in front (a CDN passing paths through) stay outside it.
        base = urlsplit(settings.private_media_url)
        signed = sign_path(
            f"{base.path}/{key.removeprefix(PRIVATE_PREFIX)}",
            settings.url_signing_secret,
            settings.signed_url_ttl_s,
        )
        return urlunsplit((base.scheme, base.netloc, "", "", "")) + signed
    return f"{settings.public_media_url}/{key}"


def planned_variant_urls(
    media: Media, rules: ImageRules, settings: Settings
) -> dict[str, str] | None:
    """The URLs a public media's variants will have once it is ready (every size of the
    kind's ladder is written, in the kind's output format); None for a private media, whose
    URLs are signed when it is read."""
    if media.is_private:
        return None
    output = OUTPUT_FORMATS[rules.output_format]
    return {
        spec.name: variant_url(variant_key(media.id, output.filename(spec.name)), settings)
        for spec in rules.sizes
    }


def media_document(
    media: Media,
    settings: Settings,
    *,
    full: bool,
    owner: bool,
    signed_urls: bool,
    sizes: str | None = None,
) -> dict[str, Any]:
    """The members of a media's JSON (see `media_view`) as plain data, for one
    `model_validate` (in pydantic-core: half the time of building each part's model)."""

    def url_of(key: str) -> str | None:
        return variant_url(key, settings) if signed_urls or not is_private(key) else None

    # jsonb keeps object keys in its own order; the API lists variants smallest first.
    ladder = sorted(media.variants.items(), key=lambda item: item[1].size)
    original: dict[str, Any] = {
        "mime": media.original.mime,
        "bytes": media.original.bytes,
        "width": media.original.width,
        "height": media.original.height,
        "frames": media.original.frames,
    }
    document: dict[str, Any] = {
        "id": media.id,
        **({"owner": media.owner} if owner else {}),
        "kind": media.kind,
        "collection": media.collection,
        "position": media.position,
        "visibility": media.visibility,
        "space": media.space,
        "status": media.status,
        "original": original,
        "variants": {
            name: {
                "url": url_of(v.key),
                "width": v.width,
                "height": v.height,
                "bytes": v.bytes,
                "mime": v.mime,
                **(
                    {
                        "alternates": {
                            a.mime: {"url": url_of(a.key), "bytes": a.bytes} for a in v.alternates
                        }
                    }
                    if v.alternates
                    else {}
                ),
            }
            for name, v in ladder
        },
        "placeholder": (
            None
            if media.placeholder is None
            else {
                "thumbhash": media.placeholder.thumbhash,
                "dominant_color": media.placeholder.dominant_color,
            }
        ),
        "created_at": timestamp(media.created_at),
    }
    # Not where a URL is withheld: a private media's (or a quarantined one's, under
    # `private/` whatever its visibility) in a webhook.
    if ladder and all(url_of(v.key) is not None for _, v in ladder):
        document["srcset"] = _srcsets([v for _, v in ladder], url_of)
    if sizes is not None:
        document["sizes"] = sizes
    if full:
        original["sha256"] = media.original.sha256
        document["processing"] = media.processing
        pdq = media.pdq
        document["pdq"] = None if pdq is None else {"hash": pdq.hash, "quality": pdq.quality}
    if media.expires_at is not None and media.status == "pending":
        document["expires_at"] = timestamp(media.expires_at)
    if media.problem is not None:
        document["problem"] = media.problem
    return document


def _srcsets(ladder: list[StoredVariant], url_of: Callable[[str], str | None]) -> dict[str, str]:
    """Per MIME type, the ladder as an `<img srcset>` value: `url 128w, ...`. Variants of a
    source smaller than several sizes share a width; the first (smallest name) stands."""
    candidates: dict[str, dict[int, str]] = {}
    for variant in ladder:
        files = [(variant.mime, variant.key)] + [(a.mime, a.key) for a in variant.alternates]
        for mime, key in files:
            url = url_of(key)
            assert url is not None, "a srcset is made only where every URL is given"
            candidates.setdefault(mime, {}).setdefault(variant.width, url)
    return {
        mime: ", ".join(f"{url} {width}w" for width, url in by_width.items())
        for mime, by_width in candidates.items()
    }


def media_view(
    media: Media,
    settings: Settings,
    *,
    full: bool,
    owner: bool | None = None,
    sizes: str | None = None,
) -> shapes.Media:
    """The Media JSON of the API. Private variants carry signed URLs valid for a while.

    `full` (owner and admins) adds what is nobody else's business: the original's sha256
    (it identifies the exact file), the picture's PDQ hash (it finds near-copies) and the
    processing report (it says, for example, that a GPS position was removed). `owner`
    (default: as `full`; `web.access.shows_owner` decides for other readers) adds who
    uploaded it.
    """
    sees_owner = full if owner is None else owner
    document = media_document(
        media, settings, full=full, owner=sees_owner, signed_urls=True, sizes=sizes
    )
    return shapes.Media.model_validate(document)


def uploaded_view(
    media: Media, settings: Settings, replaced: Sequence[str] | None, sizes: str | None = None
) -> shapes.UploadedMedia:
    """What an upload answers its owner: the media, and (a replacing kind) what it retired."""
    document = media_document(media, settings, full=True, owner=True, signed_urls=True, sizes=sizes)
    if replaced is not None:
        document["replaced"] = list(replaced)
    return shapes.UploadedMedia.model_validate(document)


def event_view(media: Media, settings: Settings) -> shapes.EventMedia:
    """A media as webhooks carry it: what anyone who may see the media gets, with its owner
    (the product's backend receives these) and without signed URLs: a signed URL grants
    its reader the file, so it is only minted for a caller the API has checked, and a
    webhook is stored and retried for hours. A private variant's `url` is null."""
    document = media_document(media, settings, full=False, owner=True, signed_urls=False)
    return shapes.EventMedia.model_validate(document)


def timestamp(moment: datetime) -> str:
    """An API timestamp: ISO 8601 in UTC with a `Z`."""
    return moment.isoformat().replace("+00:00", "Z")

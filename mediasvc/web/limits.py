"""`GET /v1/limits`: what a client needs to know to resize before sending."""

from __future__ import annotations

from aiohttp import web

from mediasvc.appkeys import SETTINGS, UPLOADS
from mediasvc.contract import shapes
from mediasvc.imaging.formats import LOADERS, OUTPUT_FORMATS
from mediasvc.imaging.variants import VARIANTS
from mediasvc.web.bodies import answer


async def get_limits(request: web.Request) -> web.Response:
    """The limits in force on this node."""
    settings = request.app[SETTINGS]
    output = OUTPUT_FORMATS[settings.output_format]
    return answer(
        shapes.Limits(
            max_upload_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_pixels,
            max_frames=settings.max_frames,
            max_animation_pixels=settings.max_animation_pixels,
            accepted_types=sorted(LOADERS),
            kinds={name: kind.describe() for name, kind in request.app[UPLOADS].form.kinds.items()},
            variants=[shapes.VariantSize(name=spec.name, size=spec.size) for spec in VARIANTS],
            output=shapes.OutputLimits(
                mime=output.mime, animated=output.animated, alpha=output.alpha
            ),
            collection_max=settings.collection_max,
            owner_max_media=settings.owner_max_media,
            owner_max_bytes=settings.owner_max_bytes,
            owner_max_inflight=settings.owner_max_inflight,
            signed_url_ttl_s=settings.signed_url_ttl_s,
            user_per_minute=shapes.UserBudgets(
                uploads=settings.user_uploads_per_min or None,
                deletes=settings.user_deletes_per_min or None,
                reads=settings.user_reads_per_min or None,
            ),
        )
    )

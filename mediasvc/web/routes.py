"""The URL map of the API."""

from aiohttp import web

from mediasvc.web import collections, health, limits, media, openapi, page, uploads


def setup_routes(app: web.Application) -> None:
    """Attach every route to `app`."""
    app.router.add_post("/v1/media", media.create_media)
    app.router.add_get("/v1/media", media.list_media)
    app.router.add_get("/v1/media/{media_id}", media.get_media)
    app.router.add_delete("/v1/media/{media_id}", media.delete_media)
    app.router.add_get("/v1/media/{media_id}/{variant}", media.variant_redirect)
    app.router.add_put("/v1/collections/{collection}/order", collections.put_order)
    app.router.add_post("/v1/uploads", uploads.create_session)
    app.router.add_put("/v1/uploads/{media_id}/content", uploads.put_content)
    app.router.add_post("/v1/uploads/{media_id}/complete", uploads.complete_session)
    app.router.add_get("/v1/limits", limits.get_limits)
    app.router.add_get(openapi.PATH, openapi.get_document)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", health.metrics)
    app.router.add_get("/", page.index)
    app.router.add_get("/static/{name}", page.asset)

"""The URL map of the API."""

from aiohttp import web

from mediasvc.web import health, media


def setup_routes(app: web.Application) -> None:
    """Attach every route to `app`."""
    app.router.add_post("/v1/media", media.create_media)
    app.router.add_get("/v1/media/{media_id}", media.get_media)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)

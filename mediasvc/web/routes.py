"""The URL map of the API: each handler on its path from `contract.paths`, as a named
resource (`app.router[paths.MEDIA_ITEM.name].url_for(media_id=...)` builds a URL)."""

from aiohttp import web
from aiohttp.typedefs import Handler

from mediasvc.contract import paths
from mediasvc.web import (
    blocklist,
    collections,
    health,
    limits,
    media,
    moderation,
    openapi,
    page,
    spaces,
    uploads,
)


def setup_routes(app: web.Application) -> None:
    """Attach every route to `app`."""
    router = app.router

    def add(method: str, path: paths.Path, handler: Handler) -> None:
        if method == "GET":
            router.add_get(path.template, handler, name=path.name)
        else:
            router.add_route(method, path.template, handler, name=path.name)

    add("POST", paths.MEDIA, media.create_media)
    add("GET", paths.MEDIA, media.list_media)
    add("GET", paths.MEDIA_ITEM, media.get_media)
    add("DELETE", paths.MEDIA_ITEM, media.delete_media)
    add("GET", paths.VARIANT, media.variant_redirect)
    add("POST", paths.MEDIA_MODERATION, moderation.decide)
    add("GET", paths.MODERATION, moderation.list_quarantined)
    add("POST", paths.TAKEDOWN, blocklist.takedown)
    add("PUT", paths.COLLECTION_ORDER, collections.put_order)
    add("DELETE", paths.SPACE_MEDIA, spaces.delete_space_media)
    add("POST", paths.UPLOADS, uploads.create_session)
    add("PUT", paths.UPLOAD_CONTENT, uploads.put_content)
    add("POST", paths.UPLOAD_COMPLETE, uploads.complete_session)
    add("POST", paths.BLOCKLIST, blocklist.add_entry)
    add("GET", paths.BLOCKLIST, blocklist.list_entries)
    add("DELETE", paths.BLOCKLIST_ENTRY, blocklist.remove_entry)
    add("GET", paths.LIMITS, limits.get_limits)
    add("GET", paths.OPENAPI, openapi.get_document)
    add("GET", paths.HEALTHZ, health.healthz)
    add("GET", paths.READYZ, health.readyz)
    add("GET", paths.METRICS, health.metrics)
    add("GET", paths.PAGE, page.index)
    add("GET", paths.STATIC, page.asset)

"""Every path of the API, written once, with the name of its route.

`web.routes` attaches the handlers to these (aiohttp named resources, so the web layer
builds URLs with `app.router[path.name].url_for(...)`), the OpenAPI document's `paths`
are these templates, and code below the web layer that hands out a URL formats one
(`UPLOAD_CONTENT.format(media_id=...)`, the signed PUT of a local-disk session).

A leaf: the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class Path:
    """One route's path: its aiohttp resource name and its template (`{name}` segments)."""

    name: str
    template: str

    def format(self, **params: str) -> str:
        """The path with `params` filled in, each quoted as one segment."""
        return self.template.format(**{key: quote(value, safe="") for key, value in params.items()})


MEDIA = Path("media", "/v1/media")
MEDIA_ITEM = Path("media_item", "/v1/media/{media_id}")
VARIANT = Path("variant", "/v1/media/{media_id}/{variant}")
# POST only: a GET of the same shape is a variant (no size is named `moderation`).
MEDIA_MODERATION = Path("media_moderation", "/v1/media/{media_id}/moderation")
MODERATION = Path("moderation", "/v1/moderation")
TAKEDOWN = Path("takedown", "/v1/media/{media_id}/takedown")
COLLECTION_ORDER = Path("collection_order", "/v1/collections/{collection}/order")
SPACE_MEDIA = Path("space_media", "/v1/spaces/{space}/media")
UPLOADS = Path("uploads", "/v1/uploads")
UPLOAD_CONTENT = Path("upload_content", "/v1/uploads/{media_id}/content")
UPLOAD_COMPLETE = Path("upload_complete", "/v1/uploads/{media_id}/complete")
BLOCKLIST = Path("blocklist", "/v1/blocklist")
BLOCKLIST_ENTRY = Path("blocklist_entry", "/v1/blocklist/{entry_id}")
LIMITS = Path("limits", "/v1/limits")
OPENAPI = Path("openapi", "/v1/openapi.json")
HEALTHZ = Path("healthz", "/healthz")
READYZ = Path("readyz", "/readyz")
METRICS = Path("metrics", "/metrics")
PAGE = Path("page", "/")
STATIC = Path("static", "/static/{name}")

PATHS: tuple[Path, ...] = (
    MEDIA,
    MEDIA_ITEM,
    VARIANT,
    MEDIA_MODERATION,
    MODERATION,
    TAKEDOWN,
    COLLECTION_ORDER,
    SPACE_MEDIA,
    UPLOADS,
    UPLOAD_CONTENT,
    UPLOAD_COMPLETE,
    BLOCKLIST,
    BLOCKLIST_ENTRY,
    LIMITS,
    OPENAPI,
    HEALTHZ,
    READYZ,
    METRICS,
    PAGE,
    STATIC,
)

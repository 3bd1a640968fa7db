"""Answers to plain HTML forms (no script), as S3's `success_action_redirect` gives them.

An upload form may carry `success_redirect`, an absolute URL on one of
`MEDIASVC_CORS_ORIGINS` (checked by `form` as it arrives; any other is `400`). From then
on the answer is `303 See Other` back to that page: with `media=<id>` added to its query
when the upload is stored, with `error=<code>` when it is refused, including refusals
raised while the rest of the body is read (the problem middleware asks `refusal` first).
Refusals made before the field was read (`401`, the CSRF `403`, a declared oversize body)
stay problem responses: send `success_redirect` before `file`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import hdrs, web

from mediasvc.appkeys import SETTINGS
from mediasvc.ingest import FORM_FIELDS
from mediasvc.origins import origin_of


def target(request: web.Request) -> str | None:
    """The page this request's answer goes back to, if its form named one."""
    fields: dict[str, str] = request.get(FORM_FIELDS, {})
    url = fields.get("success_redirect")
    # Checked where it is used as well: a redirect to a page the settings do not allow
    # would make the service an open redirector.
    if url is None or origin_of(url) not in request.app[SETTINGS].cors_origins:
        return None
    return url


# The parameters that tell the page the outcome: exactly one of them is in the answer.
OUTCOME_PARAMS = frozenset({"media", "error"})


def see_other(url: str, **params: str) -> web.Response:
    """`303 See Other` to `url` with `params` set in its query; the page's other parameters
    are kept, an outcome parameter it already had (from an earlier upload) is not."""
    parts = urlsplit(url)
    dropped = OUTCOME_PARAMS | params.keys()
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in dropped]
    location = urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))
    return web.Response(
        status=303, headers={hdrs.LOCATION: location, hdrs.CACHE_CONTROL: "no-store"}
    )


def refusal(request: web.Request, code: str) -> web.Response | None:
    """The redirect that replaces the problem `code` for a form that named a page."""
    url = target(request)
    return None if url is None else see_other(url, error=code)

"""What an app under test answered: (method, route template, status) of every response.

`record_answers(app)` before the app starts; `app[ANSWERS]` then grows with every response
it prepares, problems and redirects included. The OpenAPI tests read it to show that every
response the document promises is one the app gives.
"""

from __future__ import annotations

from aiohttp import web

Answer = tuple[str, str, int]
ANSWERS = web.AppKey("tests.answers", set[Answer])
# Everything every recorded app answered in this test session.
SESSION: set[Answer] = set()


def record_answers(app: web.Application) -> set[Answer]:
    """Record every response `app` prepares; the set it fills (also `app[ANSWERS]`)."""
    answered: set[Answer] = set()

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        # No resource: a path no route matches, or a method none takes (404/405 problems).
        resource = request.match_info.route.resource
        if resource is not None:
            answer = (request.method, resource.canonical, response.status)
            answered.add(answer)
            SESSION.add(answer)

    app.on_response_prepare.append(record)
    app[ANSWERS] = answered
    return answered

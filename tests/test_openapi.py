"""The OpenAPI document and the registry of problem codes: the document is valid OpenAPI
3.1, served where the README says, linked from the page; every route of the app's router
is an operation and every operation a route; every problem code is written once, in
`contract.codes`, and the error tree, the imaging rejections, aiohttp's refusals, nginx's
own problems and the document all answer with it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from contract import Contract
from openapi_spec_validator import validate
from support import Client, bearer, npm_tools, run_tool

import mediasvc
from mediasvc.app import create_app
from mediasvc.config import Settings
from mediasvc.contract import codes, paths
from mediasvc.contract.codes import CODES
from mediasvc.errors import BadRequest, InvalidImage, MediaError
from mediasvc.flows.processing import _REJECTIONS
from mediasvc.kinds import kind_rules
from mediasvc.stack.nginxconf import Site, render
from mediasvc.web import problems
from mediasvc.web.openapi import MODERATION_HOOK, PATH, build_document

PACKAGE = Path(mediasvc.__file__).parent
NGINX = PACKAGE / "nginx"
# Pinned, so a release with new rules cannot fail an unchanged document.
REDOCLY = "@redocly/cli@2.77.0"


def document_for(settings: Settings) -> dict[str, Any]:
    return build_document(settings, kind_rules(settings))


def subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


class TestDocument:
    @pytest.mark.parametrize("cookie", [None, "access_token"])
    def test_is_valid_openapi_3_1(
        self, make_settings: Callable[..., Settings], cookie: str | None
    ) -> None:
        """openapi-spec-validator finds nothing wrong, with and without the cookie scheme."""
        document = document_for(make_settings(auth_cookie=cookie))
        assert document["openapi"] == "3.1.0"
        validate(document)

    @pytest.mark.parametrize("cookie", [None, "access_token"])
    async def test_lints_clean_with_redocly_recommended(
        self,
        aiohttp_client: Any,
        make_settings: Callable[..., Settings],
        cookie: str | None,
        tmp_path: Path,
    ) -> None:
        """Redocly's recommended rules find nothing in the served document, bar
        `info-license`: the project states no licence, so the document names none
        (docs/decisions.md, "Linting the OpenAPI document")."""
        client = await aiohttp_client(create_app(make_settings(auth_cookie=cookie)))
        served = await client.get(PATH)
        (tmp_path / "openapi.json").write_text(await served.text())
        redocly = npm_tools("redocly", REDOCLY) / ".bin" / "redocly"
        argv = [redocly, "lint", "--extends", "recommended", "--skip-rule", "info-license"]
        # It exits 0 on warnings: the report counts them.
        report = json.loads(await run_tool(*argv, "--format", "json", "openapi.json", cwd=tmp_path))
        assert [f"{p['ruleId']}: {p['message']}" for p in report["problems"]] == []

    async def test_is_served_through_nginx(
        self, client: Client, nginx: str, http: aiohttp.ClientSession, settings: Settings
    ) -> None:
        """GET /v1/openapi.json through nginx is the document of this app's settings."""
        async with http.get(f"{nginx}{PATH}") as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            assert await response.json() == document_for(settings)

    def test_the_page_links_to_it(self) -> None:
        """The upload page's footer links to the document."""
        page = (PACKAGE / "web" / "static" / "index.html").read_text()
        assert f'href="{PATH}"' in page

    def test_security_schemes_follow_the_settings(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        """Bearer always; the cookie scheme, by its configured name, only when it is set."""
        plain = document_for(make_settings())
        assert set(plain["components"]["securitySchemes"]) == {"bearer"}
        assert plain["security"] == [{"bearer": []}]
        cookie = document_for(make_settings(auth_cookie="sid"))
        schemes = cookie["components"]["securitySchemes"]
        assert schemes["cookie"] == {**schemes["cookie"], "type": "apiKey", "in": "cookie"}
        assert schemes["cookie"]["name"] == "sid"
        assert cookie["security"] == [{"bearer": []}, {"cookie": []}]

    def test_kinds_follow_the_kinds_file(self, make_settings: Callable[..., Settings]) -> None:
        """A kind from the kinds file is one the form and the session request may name."""
        document = document_for(
            make_settings(kinds_table={"kinds": {"chat": {"max_bytes": 100_000}}})
        )
        schemas = document["components"]["schemas"]
        for schema in ("UploadForm", "UploadSessionRequest"):
            assert schemas[schema]["properties"]["kind"]["enum"] == ["post", "avatar", "chat"]

    def test_it_names_a_server_and_types_the_file_as_binary(self, settings: Settings) -> None:
        """A `servers` entry (relative: where the document was served) and the form's
        `file` as binary, which generators turn into a file or blob type."""
        document = document_for(settings)
        assert document["servers"] == [{**document["servers"][0], "url": "/"}]
        file = document["components"]["schemas"]["UploadForm"]["properties"]["file"]
        assert (file["format"], file["contentMediaType"]) == (
            "binary",
            "application/octet-stream",
        )

    def test_webhooks_give_each_event_type_its_body(self, settings: Settings) -> None:
        """One POST per event type, whose body is that type's model; a private media's
        variant URL may be null there (never in the API's Media), and only a replaced
        media names `replaced_by`."""
        contract = Contract(document_for(settings))
        webhooks = dict(contract.document["webhooks"])
        # The moderation hook is not an event: tests/test_moderation.py checks it.
        assert webhooks.pop(MODERATION_HOOK)["post"]["operationId"] == "onModeration"
        assert set(webhooks) == {
            "media.ready",
            "media.deleted",
            "media.replaced",
            "media.rerendered",
            "upload.failed",
        }
        schemas = contract.document["components"]["schemas"]
        for event_type, item in webhooks.items():
            body = item["post"]["requestBody"]["content"]["application/json"]["schema"]
            model = contract.resolve(body["$ref"])
            assert model["properties"]["type"]["const"] == event_type
            assert any(status.startswith("4") for status in item["post"]["responses"])
        assert schemas["EventVariant"]["properties"]["url"]["anyOf"][1] == {"type": "null"}
        assert schemas["Variant"]["properties"]["url"]["type"] == "string"
        assert "replaced_by" in schemas["ReplacedMedia"]["properties"]
        assert "replaced_by" not in schemas["EventMedia"]["properties"]

    def test_every_example_matches_its_schema(self, settings: Settings) -> None:
        """Examples are checked, so they cannot drift from the schemas they illustrate."""
        contract = Contract(document_for(settings))
        components = contract.document["components"]
        checked = 0
        for name, schema in components["schemas"].items():
            for example in schema.get("examples", []):
                contract.validate({"$ref": f"#/components/schemas/{name}"}, example)
                checked += 1
        for response in components["responses"].values():
            for content in response.get("content", {}).values():
                if "example" in content:
                    contract.validate(content["schema"], content["example"])
                    checked += 1
        assert checked >= 15


class TestRoutes:
    def test_every_route_is_an_operation_and_every_operation_a_route(
        self, settings: Settings
    ) -> None:
        """The app's router and the document's paths name the same (method, path) pairs.

        HEAD is left out: aiohttp answers it for every GET (the document says so once)."""
        app = create_app(settings)
        routed = {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.resource is not None and route.method != "HEAD"
        }
        documented = set(Contract(document_for(settings)).operations())
        assert routed == documented

    def test_every_route_is_a_named_resource_on_its_path(self, settings: Settings) -> None:
        """The router's resources are `contract.paths`, by name: what builds URLs (Location,
        `complete_url`) and what the document lists are the same paths."""
        app = create_app(settings)
        named = {
            resource.name: resource.canonical
            for resource in app.router.resources()
            if resource.name is not None
        }
        assert named == {path.name: path.template for path in paths.PATHS}
        assert len(list(app.router.resources())) == len(paths.PATHS)
        assert set(document_for(settings)["paths"]) == {path.template for path in paths.PATHS}

    def test_each_path_is_written_once(self) -> None:
        """No module spells a route's path: handlers, flows and the document name it (`/`
        is too common a string to tell)."""
        for path in paths.PATHS:
            if path is paths.PAGE:
                continue
            assert spelled(path.template) == ["mediasvc/contract/paths.py"], path

    def test_a_formatted_path_quotes_its_segments(self) -> None:
        """A value is one segment: a `/` in it cannot reach another route."""
        assert paths.MEDIA_ITEM.format(media_id="a/b c") == "/v1/media/a%2Fb%20c"

    async def test_urls_handed_out_are_the_routers(self, client: Client) -> None:
        """A session's `complete_url`, its content URL and `Location` are the routes'
        paths, and each leads to its operation."""
        response = await client.post(
            "/v1/uploads", json={"content_type": "image/jpeg", "size": 10}, headers=bearer()
        )
        session = await response.json()
        router = client.app.router
        media_id = session["id"]
        assert response.headers["Location"] == str(
            router[paths.MEDIA_ITEM.name].url_for(media_id=media_id)
        )
        assert session["complete_url"] == paths.UPLOAD_COMPLETE.format(media_id=media_id)
        assert session["upload"]["url"].startswith(
            paths.UPLOAD_CONTENT.format(media_id=media_id) + "?"
        )
        read = await client.get(response.headers["Location"], headers=bearer())
        assert (read.status, (await read.json())["id"]) == (200, media_id)

    def test_each_operation_documents_a_success_and_the_default_problem(
        self, settings: Settings
    ) -> None:
        """Every operation says what success is, at least one refusal, and what any other
        problem looks like."""
        contract = Contract(document_for(settings))
        for operation, spec in contract.operations().items():
            assert any(s < 400 for s in contract.statuses(operation)), operation
            assert spec["responses"]["default"] == {"$ref": "#/components/responses/Problem"}
            assert re.fullmatch(r"[a-z][A-Za-z]+", spec["operationId"]), operation
            assert any(400 <= s < 500 for s in contract.statuses(operation)), operation


def spelled(text: str) -> list[str]:
    """Where `text` is written as a string literal in the package's Python files."""
    literal = re.compile(rf"""(["']){re.escape(text)}\1""")
    return [
        str(path.relative_to(PACKAGE.parent))
        for path in sorted(PACKAGE.rglob("*.py"))
        if literal.search(path.read_text())
    ]


class TestProblemCodes:
    def test_each_code_is_written_once_in_the_registry(self) -> None:
        """No module spells a code, and no nginx template types a problem body: they name
        the registry's entry."""
        for code in CODES:
            assert spelled(code) == ["mediasvc/contract/codes.py"], code
        for template in NGINX.glob("*.template"):
            assert '"code":' not in template.read_text(), template

    def test_the_registry_is_a_leaf(self) -> None:
        """`contract.codes` imports the standard library only, so image workers may use it."""
        source = (PACKAGE / "contract" / "codes.py").read_text()
        imported = re.findall(r"^(?:from|import) ([\w.]+)", source, re.MULTILINE)
        assert [name for name in imported if name.split(".")[0] == "mediasvc"] == []

    def test_the_error_tree_answers_with_the_registry(self) -> None:
        """Each error class's status, default code and title are its registry entry's, and
        an instance's precise code brings its own title."""
        for cls in subclasses(MediaError):
            entry = CODES[cls.default_code]
            assert (entry.status, entry.title) == (cls.status, cls.title), cls
        error = InvalidImage("Too small.", code=codes.TOO_SMALL, min_width=100)
        assert (error.code, error.title, error.status) == ("too_small", "Invalid image", 422)

    def test_a_code_of_another_status_is_refused(self) -> None:
        """A 400 cannot carry a 422's code: the status a client reads is the code's."""
        with pytest.raises(ValueError, match="too_small is a 422"):
            BadRequest("nonsense", code=codes.TOO_SMALL)

    def test_image_rejections_become_errors_of_their_codes_status(self) -> None:
        """A worker's rejection becomes the error whose status its code has."""
        for rejection, error in _REJECTIONS.items():
            assert rejection.default.status == error.status, rejection
        for entry in (codes.TOO_SMALL, codes.TOO_LARGE, codes.TOO_MANY_PIXELS):
            assert entry.status == InvalidImage.status

    async def test_aiohttp_refusals_are_registry_problems(self, client: Client) -> None:
        """An unknown path and a method a path does not take answer the registry's problem
        with its title; other statuses are `http_error`."""
        missing = await client.get("/v1/nowhere")
        assert await missing.json() == codes.NOT_FOUND.body("Not Found")
        wrong = await client.patch("/v1/limits")
        assert wrong.headers["Allow"] == "GET,HEAD"
        assert await wrong.json() == codes.METHOD_NOT_ALLOWED.body("Method Not Allowed")
        assert codes.HTTP_ERROR.body("I'm a teapot", status=418, title="I'm a teapot")["code"] == (
            "http_error"
        )

    def test_each_status_aiohttp_refuses_with_maps_to_its_general_code(self) -> None:
        """A status aiohttp raises itself maps to the general code of that status, never to
        a specific one (a 403 is `forbidden`, not nginx's `signature_invalid`)."""
        for status in (400, 401, 403, 404, 405, 413, 415):
            assert problems.code_for(status) == codes.with_status(status)[0], status
        assert problems.code_for(418) == codes.HTTP_ERROR

    def test_nginx_problems_are_rendered_from_the_registry(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        """Each problem nginx answers itself is a registry code that says nginx answers it,
        rendered into the site as a `return` of the code's status and document; each code
        that says nginx answers it is among them."""
        site = Site.for_settings(settings, listen="127.0.0.1:1", upstreams=["127.0.0.1:2"])
        render(site, tmp_path)
        rendered = (tmp_path / "mediasvc.conf").read_text()
        answers = re.findall(r"return (\d{3}) '(\{.*\})';", rendered)
        bodies = [(int(status), json.loads(body)) for status, body in answers]
        assert len(bodies) == len(site.problems())
        for status, body in bodies:
            entry = CODES[body["code"]]
            assert "nginx" in entry.by, entry
            assert (body["type"], body["title"]) == (entry.type, entry.title)
            assert status == body["status"] == entry.status
        by_nginx = {entry.code for entry in CODES.values() if "nginx" in entry.by}
        assert {body["code"] for _, body in bodies} == by_nginx
        assert bodies[0][1]["limit"] == settings.max_upload_bytes

    def test_the_problem_schema_lists_every_code_and_each_status_its_codes(
        self, settings: Settings
    ) -> None:
        """`ProblemCode` is the enum of every code, and `ProblemNNN` narrows a response of
        status NNN to the codes that come with it."""
        schemas = document_for(settings)["components"]["schemas"]
        assert schemas["ProblemCode"]["enum"] == list(CODES)
        for code, entry in CODES.items():
            assert f"`{code}`" in schemas["ProblemCode"]["description"]
            narrowed = schemas.get(f"Problem{entry.status}")
            if narrowed is not None:
                assert code in narrowed["allOf"][1]["properties"]["code"]["enum"]

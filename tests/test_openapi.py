"""The OpenAPI document: valid OpenAPI 3.1, served where the README says, linked from the
page, and kept complete by reading the code: every route of the app's router is an
operation and every operation a route; every problem `code` the source, nginx's templates
or aiohttp's refusals can answer with is in `PROBLEM_CODES` with the status it comes with.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from contract import Contract
from openapi_spec_validator import validate

import mediasvc
from mediasvc import errors
from mediasvc.app import create_app
from mediasvc.config import Settings
from mediasvc.errors import MediaError
from mediasvc.flows.processing import _REJECTIONS
from mediasvc.imaging.job import ImageRejected
from mediasvc.kinds import kind_rules
from mediasvc.web import problems
from mediasvc.web.openapi import PATH, PROBLEM_CODES, build_document

Client = TestClient[Any, Any]
PACKAGE = Path(mediasvc.__file__).parent
NGINX = PACKAGE.parent / "nginx"


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
        document = document_for(make_settings(kinds_table={"chat": {"max_bytes": 100_000}}))
        schemas = document["components"]["schemas"]
        for schema in ("UploadForm", "UploadSessionRequest"):
            assert schemas[schema]["properties"]["kind"]["enum"] == ["post", "avatar", "chat"]

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

    def test_each_operation_documents_a_success_and_the_default_problem(
        self, settings: Settings
    ) -> None:
        """Every operation says what success is and what any other problem looks like."""
        contract = Contract(document_for(settings))
        for operation, spec in contract.operations().items():
            assert any(s < 400 for s in contract.statuses(operation)), operation
            assert spec["responses"]["default"] == {"$ref": "#/components/responses/Problem"}
            assert re.fullmatch(r"[a-z][A-Za-z]+", spec["operationId"]), operation


def raised_codes() -> Iterator[tuple[str, int | None, str]]:
    """(code, status or None if not known here, where) for every literal problem code in
    the package: `code="..."` keywords of error constructors, and the status and code
    passed to `problem_response` / `problem_body` directly."""
    error_classes = {cls.__name__: cls for cls in subclasses(MediaError)}
    rejections = {cls.__name__: cls for cls in (ImageRejected, *subclasses(ImageRejected))}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else None
            name = node.func.id if isinstance(node.func, ast.Name) else name
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
            for keyword in node.keywords:
                if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
                    status = None
                    if name in error_classes:
                        status = error_classes[name].status
                    elif name in rejections:
                        status = _REJECTIONS[rejections[name]].status
                    yield str(keyword.value.value), status, where
            args = node.args
            if name in ("problem_response", "problem_body") and len(args) >= 2:
                status_arg, code_arg = args[0], args[1]
                if isinstance(code_arg, ast.Constant):
                    status = status_arg.value if isinstance(status_arg, ast.Constant) else None
                    yield str(code_arg.value), status, where
            if name == "refusal" and len(args) >= 2 and isinstance(args[1], ast.Constant):
                yield str(args[1].value), None, where


def nginx_codes() -> Iterator[tuple[str, int, str]]:
    """(code, status, template) for every problem nginx's templates answer themselves."""
    for template in sorted(NGINX.glob("*.template")):
        for line in template.read_text().splitlines():
            answer = re.search(r"return (\d{3}) '(\{.*\})';", line)
            if answer and '"code"' in answer[2]:
                code = re.search(r'"code": "([a-z_]+)"', answer[2])
                assert code is not None, line
                yield code[1], int(answer[1]), template.name


def every_code_answered() -> Iterator[tuple[str, int | None, str]]:
    """Every problem code the service can answer with, wherever it comes from."""
    for cls in (MediaError, *subclasses(MediaError)):
        yield cls.default_code, cls.status, f"errors.{cls.__name__}"
    for rejection, error in _REJECTIONS.items():
        yield rejection.default_code, error.status, f"imaging.job.{rejection.__name__}"
    yield from raised_codes()
    yield from nginx_codes()
    for status, code in problems._HTTP_CODES.items():
        yield code, status, "web.problems._HTTP_CODES"
    yield problems.code_for(599), None, "web.problems.code_for"


class TestProblemCodes:
    def test_the_scan_finds_what_is_known_to_be_there(self) -> None:
        """The source scan reads what it must: precise codes, nginx's, aiohttp's."""
        found = {code for code, _, _ in every_code_answered()}
        expected = {"too_many_pixels", "upload_expired", "header_too_large", "method_not_allowed"}
        assert found >= expected | {"busy", "internal", "http_error", "checksum_mismatch"}
        assert {code for code, _, _ in nginx_codes()} >= {"payload_too_large", "too_many_requests"}

    def test_every_code_the_service_answers_with_is_documented(self) -> None:
        """A new code anywhere (an error class, a `code="..."`, nginx, aiohttp) must be
        added to `PROBLEM_CODES`, with the status it is raised with."""
        undocumented = []
        wrong_status = []
        for code, status, where in every_code_answered():
            if code not in PROBLEM_CODES:
                undocumented.append(f"{code} ({where})")
            elif status is not None and PROBLEM_CODES[code].status != status:
                wrong_status.append(f"{code}: {status} at {where}")
        assert not undocumented, f"add to mediasvc.web.openapi.PROBLEM_CODES: {undocumented}"
        assert not wrong_status, f"PROBLEM_CODES says another status: {wrong_status}"

    def test_every_documented_code_is_one_the_service_answers_with(self) -> None:
        """No code lingers in the document after the code that raised it is gone."""
        answered = {code for code, _, _ in every_code_answered()}
        assert set(PROBLEM_CODES) - answered == set()

    def test_the_problem_schema_lists_every_code_and_each_status_its_codes(
        self, settings: Settings
    ) -> None:
        """`ProblemCode` is the enum of every code, and `ProblemNNN` narrows a response of
        status NNN to the codes that come with it."""
        schemas = document_for(settings)["components"]["schemas"]
        assert schemas["ProblemCode"]["enum"] == list(PROBLEM_CODES)
        for code, problem in PROBLEM_CODES.items():
            assert f"`{code}`" in schemas["ProblemCode"]["description"]
            narrowed = schemas.get(f"Problem{problem.status}")
            if narrowed is not None:
                assert code in narrowed["allOf"][1]["properties"]["code"]["enum"]

    def test_the_error_tree_and_the_document_agree_on_statuses(self) -> None:
        """Each error class's status is the one documented for its default code."""
        for cls in subclasses(MediaError):
            assert PROBLEM_CODES[cls.default_code].status == cls.status, cls
        assert errors.PROBLEM_TYPE_BASE.startswith("https://")

"""Inputs that once reached a 500 or a 503 are 400s naming the field, and no query string
or JSON body of any endpoint gets a 5xx."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import Client, bearer, upload_tiny


def cursor(position: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=%C2%B2", "limit"),  # '²' passes str.isdigit() but not int()
        ("limit=" + "9" * 5000, "limit"),
        ("limit=-1", "limit"),
        ("collection=abc%0A", "collection"),
        ("collection=" + "a" * 65, "collection"),
        ("collection=p&cursor=" + cursor({"p": 10**30}), "cursor"),
        ("collection=p&cursor=" + cursor({"p": True}), "cursor"),
        ("cursor=" + cursor({"t": "2026-01-01T00:00:00", "i": "x" * 22}), "cursor"),
        ("cursor=" + cursor({"t": "2026-01-01T00:00:00+00:00", "i": "not an id"}), "cursor"),
        ("cursor=" + cursor([1, 2]), "cursor"),
        ("cursor=" + "A" * 5000, "cursor"),
        ("cursor=%00%00", "cursor"),
    ],
)
async def test_bad_listing_parameters_are_400_naming_the_field(
    client: Client, query: str, field: str
) -> None:
    """Each malformed or out-of-range listing parameter is a 400 with its field."""
    response = await client.get(f"/v1/media?{query}", headers=bearer())
    assert response.status == 400, await response.text()
    problem = await response.json()
    assert (problem["code"], problem["field"]) == ("bad_request", field)


async def test_deeply_nested_reorder_body_is_400(client: Client) -> None:
    """A body nested far past the JSON parser's stack is refused, not a RecursionError."""
    body = "[" * 100_000 + "]" * 100_000
    response = await client.put(
        "/v1/collections/profile/order",
        data=body,
        headers={**bearer(), "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert (await response.json())["code"] == "bad_request"


async def test_collection_name_with_a_newline_is_refused_in_a_form(client: Client) -> None:
    """`fullmatch`, not `match` with `$`: a trailing newline is not part of a valid name."""
    response = await upload_tiny(client, collection="abc\n")
    assert response.status == 400
    assert (await response.json())["field"] == "collection"


async def test_a_token_whose_owner_holds_a_nul_is_refused_not_503(client: Client) -> None:
    """Text PostgreSQL cannot store is a 400 at the database boundary, never 'unavailable'."""
    response = await client.get("/v1/media", headers=bearer("ali\x00ce"))
    assert response.status == 400


QUERY_NAMES = st.sampled_from(["limit", "cursor", "collection", "owner", "x"])
QUERY_VALUES = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.builds(cursor, st.recursive(st.none() | st.integers() | st.text(max_size=8), st.lists)),
    st.builds(
        cursor,
        st.dictionaries(st.sampled_from(["p", "t", "i"]), st.integers() | st.text(max_size=30)),
    ),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["ids", "x"]) | st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)
PATHS = st.sampled_from(
    [
        "/v1/media",
        "/v1/media/AAAAAAAAAAAAAAAAAAAAAA",
        "/v1/media/AAAAAAAAAAAAAAAAAAAAAA/small",
        "/v1/limits",
    ]
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=PATHS,
    query=st.lists(st.tuples(QUERY_NAMES, QUERY_VALUES), max_size=4),
    admin=st.booleans(),
)
async def test_no_query_string_gets_a_server_error(
    client: Client, path: str, query: list[tuple[str, str]], admin: bool
) -> None:
    """Whatever the query string, every GET endpoint answers below 500."""
    encoded = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in query)
    response = await client.get(f"{path}?{encoded}", headers=bearer(admin=admin))
    assert response.status < 500, await response.text()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=JSON_VALUES, collection=st.text(min_size=1, max_size=70))
async def test_no_reorder_body_gets_a_server_error(
    client: Client, body: object, collection: str
) -> None:
    """Whatever JSON (or collection name in the path) a reorder sends, it answers below 500."""
    response = await client.put(
        f"/v1/collections/{quote(collection, safe='')}/order",
        data=json.dumps(body),
        headers={**bearer(), "Content-Type": "application/json"},
    )
    assert response.status < 500, await response.text()

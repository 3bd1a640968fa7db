"""Operator's view: Prometheus metrics per node, and one canonical log line per request."""

from __future__ import annotations

import re

import aiohttp
import images
import structlog
from support import Client, bearer, post_media, upload_form


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0 when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and ",".join(sorted((match[1] or "").split(","))) == wanted:
            return float(match[2])
    return 0.0


async def test_uploads_are_counted_by_outcome_code_and_stage(client: Client) -> None:
    """One created, one refused (415): counters, stage histograms and bytes move."""
    await post_media(client, images.make_jpeg())
    await post_media(client, b"<html></html>" * 100)
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert sample(text, "mediasvc_uploads_total", outcome="created", code="") == 1
    assert (
        sample(text, "mediasvc_uploads_total", outcome="refused", code="unsupported_media_type")
        == 1
    )
    for stage in ("receive", "sniff", "process", "store", "db", "total"):
        assert sample(text, "mediasvc_upload_stage_duration_seconds_count", stage=stage) >= 1
    assert sample(text, "mediasvc_upload_received_bytes_total") > 0
    assert sample(text, "mediasvc_variant_written_bytes_total") > 0


async def test_resource_gauges_and_route_labels(client: Client) -> None:
    """Pool and database gauges are read live; requests are labelled by route, not path."""
    created = await (await post_media(client, images.make_jpeg())).json()
    await client.get(f"/v1/media/{created['id']}")
    text = await (await client.get("/metrics")).text()
    assert sample(text, "mediasvc_pool_workers") == 2
    assert sample(text, "mediasvc_pool_busy_workers") == 0
    assert sample(text, "mediasvc_db_connections") >= 1
    labels = {"route": "/v1/media/{media_id}", "method": "GET", "status": "200"}
    assert sample(text, "mediasvc_http_requests_total", **labels) == 1
    assert created["id"] not in text


async def test_metrics_are_not_served_through_nginx(
    nginx: str, http: aiohttp.ClientSession
) -> None:
    """/metrics is for the scraper on the node's own port, not for the public."""
    async with http.get(f"{nginx}/metrics") as response:
        assert response.status == 404


async def test_one_log_line_per_request_with_owner_media_code_and_bytes(
    client: Client,
) -> None:
    """The canonical line carries what an operator needs; the id is also a response header."""
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        ok = await client.post(
            "/v1/media",
            data=upload_form(images.make_jpeg()),
            headers={**bearer("carol"), "X-Request-Id": "req-123"},
        )
        refused = await post_media(client, b"<html></html>" * 100, "carol")
    lines = [e for e in logs if e["event"] == "request.finished"]
    assert len(lines) == 2
    created, failed = lines
    assert created["request_id"] == "req-123" == ok.headers["X-Request-Id"]
    assert created["owner"] == "carol"
    assert created["media_id"] == (await ok.json())["id"]
    assert created["status"] == 201
    assert created["bytes_in"] > 0
    assert created["duration_ms"] > 0
    assert failed["status"] == 415
    assert failed["code"] == "unsupported_media_type"
    assert failed["request_id"] == refused.headers["X-Request-Id"]

"""nginx's cache of bucket variants: throughput and bucket requests of three ways to make a
delete visible, and what a purge costs (docs/decisions.md, "Caches purged on delete").

    .venv/bin/python -m bench.cache_purge [--seconds 5] [--keys 20] [--connections 32]

Modes, each on the project's rendered nginx in front of moto_server (loopback):
  cache       as shipped: entries kept for the TTL, purged on delete (mediasvc.nginxcache)
  revalidate  `proxy_cache_valid 200 1s` + `proxy_cache_revalidate on`: a conditional
              request to the bucket per key and second, a delete seen within ~1 s
  no-cache    `proxy_cache off`: every read is a bucket GET (the rejected design)
The client is one asyncio process (aiohttp, keep-alive), so the cached figure is bounded by
it on 2 cores; the bucket requests per second are what a real bucket would bill. The last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import boto3

from bench.procs import moto_server
from mediasvc.config import Settings
from mediasvc.nginxcache import cache_file, cache_keys, evict
from mediasvc.stack.localproc import free_port
from mediasvc.stack.nginxconf import NginxProcess, Site, render

BUCKET = "bench"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
MEDIA_ID = "AbCdEfGhIjKlMnOpQrStUv"
CACHE_CONF = "media-s3-cache.conf"
PATCHES = {
    "cache": [],
    "revalidate": [
        ("proxy_cache_valid 200 60s;", "proxy_cache_valid 200 1s;\nproxy_cache_revalidate on;")
    ],
    "no-cache": [("proxy_cache mediasvc_media;", "proxy_cache off;")],
}


def fill_bucket(endpoint: str, keys: int) -> list[str]:
    """`keys` public variant objects of 20 KB; their keys."""
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 (moto's fake credentials)
    )
    client.create_bucket(Bucket=BUCKET)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{BUCKET}/*",
            }
        ],
    }
    client.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
    names = [f"{MEDIA_ID[:2]}/{MEDIA_ID[:-2]}{i:02d}/small.webp" for i in range(keys)]
    for name in names:
        client.put_object(
            Bucket=BUCKET, Key=name, Body=os.urandom(20_000), ContentType="image/webp"
        )
    return names


def settings_for(endpoint: str, scratch: Path) -> Settings:
    return Settings(
        database_url="postgresql://unused/unused",
        url_signing_secret="bench-signing-secret-bench-signing",  # noqa: S106
        jwt_secret="bench-jwt-secret-bench-jwt-secret-00",  # noqa: S106
        data_dir=scratch,
        storage="s3",
        s3_endpoint_url=endpoint,
        s3_bucket=BUCKET,
    )


async def drive(base: str, keys: list[str], seconds: float, connections: int) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    done = 0
    deadline = time.monotonic() + seconds

    async def one(session: aiohttp.ClientSession, offset: int) -> None:
        nonlocal done
        i = offset
        while time.monotonic() < deadline:
            url = f"{base}/media/{keys[i % len(keys)]}"
            async with session.get(url, headers={"Accept": "image/webp,*/*"}) as response:
                await response.read()
                statuses[response.headers.get("X-Cache-Status", "-")] += 1
                if response.status != 200:
                    statuses[f"status {response.status}"] += 1
            done += 1
            i += 1

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        await asyncio.gather(*(one(session, n) for n in range(connections)))
        elapsed = time.monotonic() - started
    # Requests that reached the bucket: misses, expired entries and revalidations.
    upstream = sum(statuses[s] for s in ("MISS", "EXPIRED", "REVALIDATED", "-", "BYPASS"))
    return {
        "requests_per_s": round(done / elapsed),
        "bucket_requests_per_s": round(upstream / elapsed, 1),
        "statuses": dict(statuses),
    }


def run_mode(
    mode: str, endpoint: str, keys: list[str], scratch: Path, seconds: float, connections: int
) -> dict[str, Any]:
    settings = settings_for(endpoint, scratch / mode)
    port = free_port()
    site = Site.for_settings(settings, listen=f"127.0.0.1:{port}", upstreams=["127.0.0.1:9"])
    # The per-address media rate would measure itself, not the cache.
    site = replace(site, rate_media_per_s=1_000_000, rate_media_burst=1_000_000)
    runtime = scratch / mode / "nginx"
    config = render(site, runtime)
    cache_conf = runtime / CACHE_CONF
    text = cache_conf.read_text()
    for old, new in PATCHES[mode]:
        assert old in text, (mode, old)
        text = text.replace(old, new)
    cache_conf.write_text(text)
    nginx = NginxProcess(config)
    nginx.start(("127.0.0.1", port))
    try:
        base = f"http://127.0.0.1:{port}"
        asyncio.run(drive(base, keys, 1.0, connections))  # warm up: fill the cache
        return asyncio.run(drive(base, keys, seconds, connections))
    finally:
        nginx.stop()


def purge_cost(endpoint: str, scratch: Path, media: int = 1000) -> dict[str, float]:
    """Microseconds to purge one media of 5 variants (20 cache entries tried, 10 present)."""
    settings = settings_for(endpoint, scratch)
    cache_dir = scratch / "purge-cost"
    variants = [
        f"{MEDIA_ID[:2]}/{MEDIA_ID[:-4]}{i:04d}/{name}.webp"
        for i in range(media)
        for name in ("thumb", "small", "medium", "large", "xlarge")
    ]
    for key in variants:
        for cache_key in cache_keys(settings, key)[:2]:
            path = cache_file(cache_dir, cache_key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
    started = time.perf_counter()
    all_keys = [k for key in variants for k in cache_keys(settings, key)]
    removed = evict(cache_dir, all_keys)
    elapsed = time.perf_counter() - started
    assert removed == 2 * len(variants)
    return {"us_per_media": round(elapsed / media * 1e6, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cache_purge")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mediasvc-bench-") as tmp:
        scratch = Path(tmp)
        scratch.chmod(0o755)  # nginx's workers write the cache under it
        with moto_server(**CREDENTIALS) as endpoint:
            keys = fill_bucket(endpoint, args.keys)
            for mode in PATCHES:
                results[mode] = run_mode(
                    mode, endpoint, keys, scratch, args.seconds, args.connections
                )
                print(f"{mode:>10}: {results[mode]}", file=sys.stderr)
            results["purge"] = purge_cost(endpoint, scratch)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

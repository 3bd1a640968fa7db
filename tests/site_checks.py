"""The rendered nginx site, checked from outside: gixy-ng's findings and `nginx -t`, for
each storage and upstream combination `make run` may render (tests/test_gixy.py, and the
CORS sites of tests/test_cors.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from support import JWT_SECRET, SIGNING_SECRET

from mediasvc.config import Settings
from mediasvc.stack.nginxconf import Site, render

GIXY = str(Path(sys.executable).with_name("gixy"))
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# Storage the site serves from: local disk, a bucket at an address over HTTP (a local
# S3-compatible server), a bucket named by host name over HTTPS (AWS, virtual-hosted).
STORAGE: dict[str, dict[str, Any]] = {
    "local": {},
    "s3-address-http": {
        "storage": "s3",
        "s3_bucket": "media",
        "s3_endpoint_url": "http://127.0.0.1:9000",
    },
    "s3-name-https": {
        "storage": "s3",
        "s3_bucket": "media",
        "s3_region": "eu-west-1",
        "s3_addressing_style": "virtual",
        "s3_prefix": "tenant-a/",
    },
}
UPSTREAMS = {"one": ["127.0.0.1:8081"], "several": ["127.0.0.1:8081", "10.0.0.2:8081"]}


def rendered_site(tmp_path: Path, storage: str, upstreams: str, **changes: Any) -> Path:
    """The site for one combination (and settings `changes`), rendered as `make run` renders
    it; its nginx.conf."""
    settings = Settings(
        database_url="postgresql://mediasvc@127.0.0.1/mediasvc",
        url_signing_secret=SIGNING_SECRET,
        jwt_secret=JWT_SECRET,
        data_dir=tmp_path,
        media_dir=tmp_path / "media",
        **STORAGE[storage],
        **changes,
    )
    site = Site.for_settings(settings, listen="127.0.0.1:8080", upstreams=UPSTREAMS[upstreams])
    if site.s3_resolvers:
        # The machine's own name servers vary; gixy rightly flags one outside private ranges.
        site = replace(site, s3_resolvers=("127.0.0.53",))
    return render(site, tmp_path / "nginx")


def gixy_findings(config: Path) -> list[tuple[str, str, str]]:
    """gixy-ng's findings on the site at `config`, every check at every severity:
    (severity, plugin, reason)."""
    run = subprocess.run(
        [GIXY, "--format", "json", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    findings = [(f["severity"], f["plugin"], f["reason"]) for f in json.loads(run.stdout)]
    assert findings or run.returncode == 0, run.stderr
    return findings


def assert_nginx_accepts(config: Path) -> None:
    """`nginx -t` loads the site at `config`."""
    check = subprocess.run(
        [NGINX, "-t", "-q", "-p", str(config.parent), "-e", "/dev/null", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr

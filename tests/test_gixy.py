"""Every nginx site the templates can render passes gixy-ng, the nginx security analyser,
with no finding at all, and nginx itself accepts it."""

from __future__ import annotations

from pathlib import Path

import pytest
from site_checks import STORAGE, UPSTREAMS, assert_nginx_accepts, gixy_findings, rendered_site


@pytest.mark.parametrize("upstreams", sorted(UPSTREAMS))
@pytest.mark.parametrize("storage", sorted(STORAGE))
class TestEverySite:
    def test_gixy_finds_nothing(self, tmp_path: Path, storage: str, upstreams: str) -> None:
        """gixy-ng, every check at every severity, reports no issue."""
        assert gixy_findings(rendered_site(tmp_path, storage, upstreams)) == []

    def test_nginx_accepts_it(self, tmp_path: Path, storage: str, upstreams: str) -> None:
        """`nginx -t` loads it (including a bucket host name no DNS here could resolve)."""
        assert_nginx_accepts(rendered_site(tmp_path, storage, upstreams))


class TestSessionCookieSite:
    def test_the_cookie_key_passes_gixy_and_nginx(self, tmp_path: Path) -> None:
        """With a session cookie whose name holds regex characters, gixy finds nothing and
        nginx loads the site."""
        config = rendered_site(tmp_path, "local", "several", auth_cookie="__Host-s.i$d|x")
        assert r"__Host\-s\.i\$d\|x=" in (config.parent / "mediasvc.conf").read_text()
        assert gixy_findings(config) == []
        assert_nginx_accepts(config)

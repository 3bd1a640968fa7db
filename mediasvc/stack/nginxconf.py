"""The nginx in front: render the templates in `mediasvc/nginx/` and run nginx on them.

Templates use `${MEDIASVC_*}` placeholders (the envsubst convention), which never clash with
nginx's own `$variables`; rendering fails if a placeholder is left unfilled. They are package
data, read through `importlib.resources`, so an installed wheel renders the same site.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import shutil
import signal
import ssl
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from urllib.parse import urlsplit

from mediasvc.config import Settings
from mediasvc.contract import codes, paths
from mediasvc.contract.codes import Code
from mediasvc.imaging.variants import VARIANTS
from mediasvc.keys import variant_key_pattern
from mediasvc.kinds import kind_rules
from mediasvc.nginxcache import LEVELS
from mediasvc.origins import EXPOSE_HEADERS
from mediasvc.spaces import MAX_HEADER_BYTES
from mediasvc.stack.localproc import stop, wait_until_listening
from mediasvc.storage.bucket import bucket_addresses

TEMPLATE_DIR = files("mediasvc") / "nginx"
_PLACEHOLDER = re.compile(r"\$\{(MEDIASVC_[A-Z0-9_]+)\}")


class NginxError(Exception):
    """nginx refused its config or did not start; the message carries its own words."""


@dataclass(frozen=True, slots=True)
class Site:
    """What the templates need to know: the settings, and what this host adds to them."""

    settings: Settings
    listen: str
    upstreams: Sequence[str]
    s3_origin: str
    s3_path: str
    # The CA certificates an https bucket's certificate is checked against (PEM); None for
    # a plain-HTTP endpoint.
    s3_trusted_ca: Path | None = None
    # Name servers nginx asks for a bucket named by host name, again as its records expire
    # (nginx alone would resolve it once at start and keep stale addresses); unused for an
    # endpoint given as an address.
    s3_resolvers: Sequence[str] = ()
    # The names variant files may have (every kind's ladder): nothing else is served.
    variant_names: Sequence[str] = tuple(spec.name for spec in VARIANTS)

    @classmethod
    def for_settings(cls, settings: Settings, *, listen: str, upstreams: Sequence[str]) -> Site:
        """The site serving `settings`' media in front of the app nodes at `upstreams`."""
        # Where nginx fetches a bucket's objects: its preferred address.
        bucket = bucket_addresses(settings)[0]
        origin = bucket.origin
        return cls(
            settings=settings,
            listen=listen,
            upstreams=upstreams,
            s3_origin=origin,
            s3_path=bucket.path,
            s3_trusted_ca=system_ca_bundle() if origin.startswith("https://") else None,
            s3_resolvers=() if _is_address(urlsplit(origin).hostname) else system_nameservers(),
            variant_names=sorted(
                {s.name for k in kind_rules(settings).values() for s in k.image.sizes}
            ),
        )

    def values(self, runtime_dir: Path) -> dict[str, str]:
        """The placeholder values for rendering into `runtime_dir`."""
        settings = self.settings
        return {
            "MEDIASVC_LISTEN": self.listen,
            # max_fails=0: no failure nginx counts marks a node down (see the template).
            "MEDIASVC_UPSTREAM_SERVERS": "\n".join(
                f"    server {address} max_fails=0;" for address in self.upstreams
            ),
            "MEDIASVC_MEDIA_ROOT": str(settings.media_dir.resolve()),
            "MEDIASVC_MAX_UPLOAD_BYTES": str(settings.max_upload_bytes),
            "MEDIASVC_BODY_LIMIT": str(settings.body_limit_bytes),
            "MEDIASVC_NGINX_DIR": str(runtime_dir.resolve()),
            "MEDIASVC_URL_SIGNING_SECRET": settings.url_signing_secret,
            "MEDIASVC_SIGNED_URL_TTL": str(settings.signed_url_ttl_s),
            "MEDIASVC_STORAGE": settings.storage,
            "MEDIASVC_VARIANT_KEY": variant_key_pattern(self.variant_names),
            "MEDIASVC_S3_SCHEME": urlsplit(self.s3_origin).scheme,
            "MEDIASVC_S3_HOST": urlsplit(self.s3_origin).netloc,
            "MEDIASVC_S3_PATH": self.s3_path,
            "MEDIASVC_S3_TLS": self._s3_tls(),
            "MEDIASVC_S3_RESOLVER": self._s3_resolver(),
            "MEDIASVC_NGINX_CACHE_DIR": str(
                (settings.nginx_cache_dir or runtime_dir / "cache").resolve()
            ),
            "MEDIASVC_NGINX_CACHE_LEVELS": ":".join(str(width) for width in LEVELS),
            "MEDIASVC_NGINX_CACHE_SIZE": f"{settings.nginx_cache_size_mb}m",
            "MEDIASVC_NGINX_CACHE_TTL": f"{settings.nginx_cache_ttl_s}s",
            "MEDIASVC_RATE_UPLOADS": f"{settings.rate_uploads_per_min}r/m",
            "MEDIASVC_RATE_UPLOADS_BURST": str(settings.rate_uploads_burst),
            "MEDIASVC_RATE_API": f"{settings.rate_api_per_s}r/s",
            "MEDIASVC_RATE_API_BURST": str(settings.rate_api_burst),
            "MEDIASVC_RATE_MEDIA": f"{settings.rate_media_per_s}r/s",
            "MEDIASVC_RATE_MEDIA_BURST": str(settings.rate_media_burst),
            "MEDIASVC_CONN_PER_IP": str(settings.conn_per_ip),
            "MEDIASVC_CLIENT_TIMEOUT": f"{settings.client_timeout_s}s",
            # When the next upload fits the per-minute rate again.
            "MEDIASVC_RETRY_AFTER": str(max(1, math.ceil(60 / settings.rate_uploads_per_min))),
            # Exact origins (checked by `origins.parse_origin`: no quote can be among them).
            "MEDIASVC_CORS_ORIGIN_MAP": "\n".join(
                f'    "{origin}" "{origin}";' for origin in settings.cors_origins
            ),
            "MEDIASVC_CORS_EXPOSE": ", ".join(EXPOSE_HEADERS),
            "MEDIASVC_AUTH_COOKIE_MAP": self._auth_cookie_map(),
            "MEDIASVC_REAL_IP": self._real_ip(),
            # The operator's routes, which do not exist through nginx.
            **{
                f"MEDIASVC_PATH_{path.name.upper()}": path.template
                for path in (paths.HEALTHZ, paths.READYZ, paths.METRICS)
            },
            **{
                f"MEDIASVC_PROBLEM_{name}": problem_return(code, detail, **extra)
                for name, (code, detail, extra) in self.problems().items()
            },
        }

    def problems(self) -> dict[str, tuple[Code, str, dict[str, int]]]:
        """nginx's own refusals, by the name of their `${MEDIASVC_PROBLEM_*}` placeholder:
        the code, the detail and the members that help the client act."""
        return {
            "PAYLOAD_TOO_LARGE": (
                codes.PAYLOAD_TOO_LARGE,
                f"The upload is larger than {self.settings.max_upload_bytes} bytes.",
                {"limit": self.settings.max_upload_bytes},
            ),
            "UNSUPPORTED_CONTENT_ENCODING": (
                codes.UNSUPPORTED_CONTENT_ENCODING,
                "Request bodies are not accepted with a Content-Encoding; send them unencoded.",
                {},
            ),
            "HEADER_TOO_LARGE": (
                codes.HEADER_TOO_LARGE,
                f"A request header is longer than {MAX_HEADER_BYTES} bytes; a token may list "
                "about 1000 spaces.",
                {"limit": MAX_HEADER_BYTES},
            ),
            "BUCKET_UNAVAILABLE": (
                codes.BUSY,
                "The media store did not answer; try again shortly.",
                {},
            ),
            "TOO_MANY_REQUESTS": (
                codes.TOO_MANY_REQUESTS,
                "Slow down: too many requests from this client.",
                {},
            ),
            "UNAVAILABLE": (codes.BUSY, "No app node answered; try again shortly.", {}),
            "SIGNATURE_INVALID": (
                codes.SIGNATURE_INVALID,
                "The file URL signature is missing or wrong.",
                {},
            ),
            "URL_EXPIRED": (
                codes.URL_EXPIRED,
                "The file URL has expired; ask the API for the media again for a fresh one.",
                {},
            ),
        }

    def _real_ip(self) -> str:
        """The client's address from X-Forwarded-For, when it comes through a trusted
        balancer (the rightmost address not itself trusted); else nothing."""
        if not self.settings.trusted_proxies:
            return "    # No trusted balancer in front (MEDIASVC_TRUSTED_PROXIES unset)."
        return "\n".join(
            [
                *(f"    set_real_ip_from {network};" for network in self.settings.trusted_proxies),
                "    real_ip_header X-Forwarded-For;",
                "    real_ip_recursive on;",
            ]
        )

    def _auth_cookie_map(self) -> str:
        """The `map $http_cookie` line that finds the session token's signed part (the first
        cookie of that name; the app refuses a request with two)."""
        if self.settings.auth_cookie is None:
            return "    # No session cookie (MEDIASVC_AUTH_COOKIE unset): header tokens only."
        # Every character but letters, digits and _ is escaped: a cookie name may hold `.`,
        # `$`, `^`, `|`, `*` or `+` (`config._cookie_name`), none of them quotes or spaces.
        name = re.sub(r"([^A-Za-z0-9_])", r"\\\1", self.settings.auth_cookie)
        pattern = rf"~(?:^|;)\s*{name}=(?<mediasvc_cookie_part>[^.;\s]+\.[^.;\s]+)\."
        return f'    "{pattern}" $mediasvc_cookie_part;'

    def _s3_resolver(self) -> str:
        """The `resolver` for a bucket named by host name (none for an address)."""
        host = urlsplit(self.s3_origin).hostname
        if _is_address(host):
            return "# The endpoint is an address: nothing to resolve."
        if not self.s3_resolvers:
            raise NginxError(f"no name server to resolve {host} with (see /etc/resolv.conf)")
        # nginx writes an IPv6 name server in brackets (a port may follow: `[::1]:5353`).
        servers = " ".join(
            f"[{server}]" if _is_address(server) and ":" in server else server
            for server in self.s3_resolvers
        )
        # A hung lookup holds the request; nginx's default wait is 30 s.
        return f"resolver {servers};\nresolver_timeout 5s;"

    def _s3_tls(self) -> str:
        """nginx's checks of an https bucket (none for plain HTTP, which has nothing to check)."""
        if not self.s3_origin.startswith("https://"):
            return "# The endpoint is plain HTTP: no certificate to check."
        if self.s3_trusted_ca is None:
            raise NginxError(
                f"no CA certificates to check {self.s3_origin} with: install ca-certificates"
            )
        # Depth 3: leaf, intermediates and root of public CAs' chains (nginx's default, 1,
        # refuses most of them).
        return (
            "proxy_ssl_verify on;\n"
            "proxy_ssl_verify_depth 3;\n"
            f"proxy_ssl_trusted_certificate {self.s3_trusted_ca.resolve()};"
        )


def system_ca_bundle() -> Path | None:
    """The system's CA certificates as one PEM file (OpenSSL's default, Debian's
    ca-certificates, Fedora's bundle), or None if there is none."""
    defaults = ssl.get_default_verify_paths()
    candidates = (
        defaults.cafile,
        defaults.openssl_cafile,
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    )
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def system_nameservers(resolv_conf: Path = Path("/etc/resolv.conf")) -> tuple[str, ...]:
    """The name servers the system uses (`nameserver` lines; link-local ones with a zone,
    which nginx cannot address, are left out)."""
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError:
        return ()
    servers = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver" and "%" not in fields[1]:
            servers.append(fields[1])
    return tuple(servers)


def _is_address(host: str | None) -> bool:
    try:
        ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return True


def problem_return(code: Code, detail: str, **extra: int) -> str:
    """The nginx `return` that answers `code`'s problem document itself."""
    body = json.dumps(code.body(detail, extra))
    # A single-quoted nginx string: no quote, no `$` (a variable), no escapes.
    if any(char in body for char in "'$\\"):
        raise ValueError(f"not sayable in an nginx string: {body}")
    return f"return {code.status} '{body}';"


def render_template(text: str, values: dict[str, str]) -> str:
    """Fill every `${MEDIASVC_*}` placeholder; an unknown one is an error, not a blank."""

    def fill(match: re.Match[str]) -> str:
        name = match[1]
        if name not in values:
            raise KeyError(f"no value for placeholder ${{{name}}}")
        return values[name]

    return _PLACEHOLDER.sub(fill, text)


def render(site: Site, runtime_dir: Path, template_dir: Traversable = TEMPLATE_DIR) -> Path:
    """Write nginx.conf and mediasvc.conf into `runtime_dir`; returns the nginx.conf path."""
    (runtime_dir / "tmp").mkdir(parents=True, exist_ok=True)
    values = site.values(runtime_dir)
    templates = [t for t in template_dir.iterdir() if t.name.endswith(".conf.template")]
    for template in sorted(templates, key=lambda t: t.name):
        target = runtime_dir / template.name.removesuffix(".template")
        # The site config holds the URL signing secret: readable by its owner only.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(render_template(template.read_text("utf-8"), values))
    return runtime_dir / "nginx.conf"


class NginxProcess:
    """nginx in the foreground (`daemon off`) as our child, stopped by `stop()`."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """Whether the nginx master is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, wait_for: tuple[str, int], timeout_s: float = 15.0) -> None:
        """Check the config, start nginx and wait until it accepts connections."""
        binary = _nginx_binary()
        prefix = str(self.config.parent)
        error_log = str(self.config.parent / "error.log")
        check = subprocess.run(
            [binary, "-t", "-q", "-p", prefix, "-e", error_log, "-c", str(self.config)],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            raise NginxError(f"nginx rejected {self.config}: {check.stderr.strip()}")
        self._process = subprocess.Popen(
            [binary, "-p", prefix, "-e", error_log, "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
        )
        host, port = wait_for
        if wait_until_listening(self._process, port, host=host, timeout_s=timeout_s):
            return
        if self._process.poll() is not None:
            raise NginxError(f"nginx exited at start; see {error_log}")
        self.stop()
        raise NginxError(f"nginx did not listen on {host}:{port} in {timeout_s}s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful stop (SIGQUIT lets workers finish responses), SIGKILL if it lingers."""
        process, self._process = self._process, None
        if process is not None:
            stop(process, signal.SIGQUIT, timeout_s=timeout_s)


def _nginx_binary() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and Path(candidate).exists():
            return candidate
    raise NginxError("nginx not found: install it (make install does)")

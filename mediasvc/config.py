"""Settings: one frozen object read once from `MEDIASVC_*` environment variables.

Every variable is documented in `deploy/mediasvc.env.example`. A bad value raises
`ConfigError` with one line naming the variable; `main()` prints it and exits.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

OutputFormat = Literal["webp", "jpeg", "avif"]
StorageKind = Literal["local", "s3"]
AddressingStyle = Literal["path", "virtual", "auto"]
LogFormat = Literal["auto", "json", "console"]

MiB = 1024 * 1024
T = TypeVar("T")
Number = TypeVar("Number", int, float)


class ConfigError(Exception):
    """A configuration value is missing or malformed; the message is one line."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment, validated."""

    database_url: str
    url_signing_secret: str = field(repr=False)
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_public_key: str | None = field(default=None, repr=False)
    data_dir: Path = Path("var")
    media_dir: Path = Path("var/media")
    spool_dir: Path = Path("var/spool")
    app_host: str = "127.0.0.1"
    app_port: int = 8081
    app_nodes: int = 1
    http_port: int = 8080
    public_media_url: str = "/media"
    private_media_url: str = "/private"
    signed_url_ttl_s: int = 300
    collection_max: int = 5
    storage: StorageKind = "local"
    s3_bucket: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_prefix: str = ""
    s3_addressing_style: AddressingStyle = "path"
    storage_timeout_s: float = 10.0
    nginx_cache_size_mb: int = 1024
    nginx_cache_ttl_s: int = 60
    rate_uploads_per_min: int = 60
    rate_uploads_burst: int = 10
    rate_api_per_s: int = 20
    rate_api_burst: int = 40
    conn_per_ip: int = 32
    client_timeout_s: int = 30
    max_upload_bytes: int = 25 * MiB
    max_pixels: int = 60_000_000
    max_frames: int = 200
    max_animation_pixels: int = 64_000_000
    output_format: OutputFormat = "webp"
    output_quality: int = 80
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    queue_max: int = 16
    job_timeout_s: float = 60.0
    worker_memory_mb: int = 1536
    reaper_interval_s: float = 300.0
    reaper_grace_s: float = 900.0
    db_timeout_s: float = 10.0
    log_format: LogFormat = "auto"
    # Only `python -m mediasvc dev` sets it: the upload page then offers this token.
    dev_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `MEDIASVC_*` variables (default: `os.environ`)."""
        src = os.environ if env is None else env
        reader = _Reader(src)
        data_dir = reader.get("DATA_DIR", Path, Path("var"))
        public_key = reader.get("JWT_PUBLIC_KEY_FILE", _read_text, None)
        storage = reader.choice("STORAGE", StorageKind, "local")
        return cls(
            database_url=reader.require("DATABASE_URL"),
            url_signing_secret=reader.require("URL_SIGNING_SECRET", _signing_secret),
            # With a public key (RS256) no shared secret is needed.
            jwt_secret=reader.get("JWT_SECRET", str, None)
            if public_key
            else reader.require("JWT_SECRET"),
            jwt_public_key=public_key,
            data_dir=data_dir,
            media_dir=reader.get("MEDIA_DIR", Path, data_dir / "media"),
            spool_dir=reader.get("SPOOL_DIR", Path, data_dir / "spool"),
            app_host=reader.get("APP_HOST", str, "127.0.0.1"),
            app_port=reader.get("APP_PORT", _port, 8081),
            app_nodes=reader.get("APP_NODES", _positive, 1),
            http_port=reader.get("HTTP_PORT", _port, 8080),
            public_media_url=reader.get("PUBLIC_MEDIA_URL", str, "/media").rstrip("/"),
            private_media_url=reader.get("PRIVATE_MEDIA_URL", str, "/private").rstrip("/"),
            signed_url_ttl_s=reader.get("SIGNED_URL_TTL", _positive, 300),
            collection_max=reader.get("COLLECTION_MAX", _positive, 5),
            storage=storage,
            s3_bucket=reader.require("S3_BUCKET") if storage == "s3" else "",
            s3_endpoint_url=reader.get("S3_ENDPOINT_URL", str, None),
            s3_region=reader.get("S3_REGION", str, "us-east-1"),
            s3_prefix=reader.get("S3_PREFIX", _key_prefix, ""),
            s3_addressing_style=reader.choice("S3_ADDRESSING_STYLE", AddressingStyle, "path"),
            storage_timeout_s=reader.get("STORAGE_TIMEOUT_S", _positive_float, 10.0),
            nginx_cache_size_mb=reader.get("NGINX_CACHE_SIZE_MB", _positive, 1024),
            nginx_cache_ttl_s=reader.get("NGINX_CACHE_TTL_S", _positive, 60),
            rate_uploads_per_min=reader.get("RATE_UPLOADS_PER_MIN", _positive, 60),
            rate_uploads_burst=reader.get("RATE_UPLOADS_BURST", _non_negative, 10),
            rate_api_per_s=reader.get("RATE_API_PER_S", _positive, 20),
            rate_api_burst=reader.get("RATE_API_BURST", _non_negative, 40),
            conn_per_ip=reader.get("CONN_PER_IP", _positive, 32),
            client_timeout_s=reader.get("CLIENT_TIMEOUT_S", _positive, 30),
            max_upload_bytes=reader.get("MAX_UPLOAD_BYTES", _positive, 25 * MiB),
            max_pixels=reader.get("MAX_PIXELS", _positive, 60_000_000),
            max_frames=reader.get("MAX_FRAMES", _positive, 200),
            max_animation_pixels=reader.get("MAX_ANIMATION_PIXELS", _positive, 64_000_000),
            output_format=reader.choice("OUTPUT_FORMAT", OutputFormat, "webp"),
            output_quality=reader.get("OUTPUT_QUALITY", _quality, 80),
            workers=reader.get("WORKERS", _positive, os.cpu_count() or 1),
            queue_max=reader.get("QUEUE_MAX", _non_negative, 16),
            job_timeout_s=reader.get("JOB_TIMEOUT_S", _positive_float, 60.0),
            worker_memory_mb=reader.get("WORKER_MEMORY_MB", _positive, 1536),
            reaper_interval_s=reader.get("REAPER_INTERVAL_S", _positive_float, 300.0),
            reaper_grace_s=reader.get("REAPER_GRACE_S", _non_negative_float, 900.0),
            db_timeout_s=reader.get("DB_TIMEOUT_S", _positive_float, 10.0),
            log_format=reader.choice("LOG_FORMAT", LogFormat, "auto"),
            dev_token=reader.get("DEV_TOKEN", str, None),
        )

    @property
    def body_limit_bytes(self) -> int:
        """The request-body cap nginx enforces: the file cap plus room for the form around it."""
        return self.max_upload_bytes + 64 * 1024


def database_url_from_env(env: Mapping[str, str] | None = None) -> str:
    """Only `MEDIASVC_DATABASE_URL`, for commands that need nothing else (migrate, gc)."""
    return _Reader(os.environ if env is None else env).require("DATABASE_URL")


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def require(self, name: str, parse: Callable[[str], str] = str) -> str:
        value = self._env.get(f"MEDIASVC_{name}", "")
        if not value:
            raise ConfigError(f"MEDIASVC_{name} is required and not set")
        try:
            return parse(value)
        except ValueError as exc:
            raise ConfigError(f"MEDIASVC_{name}: {exc}") from None

    def get(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self._env.get(f"MEDIASVC_{name}")
        if raw is None or raw == "":
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            raise ConfigError(f"MEDIASVC_{name}={raw!r}: {exc}") from None

    def choice(self, name: str, literal: object, default: str) -> Any:
        """One of the values of a `Literal` type; the caller's field type narrows it."""
        allowed: tuple[str, ...] = get_args(literal)
        value = self._env.get(f"MEDIASVC_{name}") or default
        if value not in allowed:
            raise ConfigError(f"MEDIASVC_{name}={value!r}: expected one of {', '.join(allowed)}")
        return value


def _key_prefix(raw: str) -> str:
    # Keys are joined as prefix + key, so a prefix names a "folder": it ends in "/".
    if raw.startswith("/") or ".." in raw:
        raise ValueError("must be a relative key prefix like 'mediasvc/'")
    return raw if raw.endswith("/") else raw + "/"


def _signing_secret(raw: str) -> str:
    # nginx's secure_link checks it, so it is written into nginx config: keep it to
    # characters that need no quoting there, and long enough not to be guessed.
    if not re.fullmatch(r"[A-Za-z0-9_-]{32,}", raw):
        raise ValueError("must be at least 32 characters of A-Z a-z 0-9 _ -")
    return raw


def _read_text(raw: str) -> str:
    try:
        return Path(raw).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror}") from None


def _checked(
    parse: Callable[[str], Number], ok: Callable[[Number], bool], message: str
) -> Callable[[str], Number]:
    """A parser that also refuses values outside a range, with `message`."""

    def checked(raw: str) -> Number:
        value = parse(raw)
        if not ok(value):
            raise ValueError(message)
        return value

    return checked


_positive = _checked(int, lambda v: v > 0, "must be a positive integer")
_non_negative = _checked(int, lambda v: v >= 0, "must be zero or more")
_positive_float = _checked(float, lambda v: v > 0, "must be a positive number")
_non_negative_float = _checked(float, lambda v: v >= 0, "must be zero or more")
_port = _checked(int, lambda v: 0 < v < 65536, "must be a TCP port (1-65535)")
_quality = _checked(int, lambda v: 1 <= v <= 100, "must be between 1 and 100")

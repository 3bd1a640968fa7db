"""Settings: one frozen object read once from `MEDIASVC_*` environment variables.

Every variable is documented in `deploy/mediasvc.env.example`. A bad value raises
`ConfigError` with one line naming the variable; `main()` prints it and exits.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, cast, get_args

from mediasvc.claims import DEFAULT_ADMIN_CLAIM, DEFAULT_MANAGE_CLAIM, DEFAULT_SUBJECT_CLAIM
from mediasvc.imaging.job import DEFAULT_RULES, ImageRules
from mediasvc.imaging.variants import DEFAULT_MAX_VARIANT_SIZE
from mediasvc.origins import parse_origin
from mediasvc.spaces import DEFAULT_CLAIM

OutputFormat = Literal["webp", "jpeg", "avif"]
StorageKind = Literal["local", "s3"]
AddressingStyle = Literal["path", "virtual", "auto"]
LogFormat = Literal["auto", "json", "console"]
# What sits between the nodes and PostgreSQL: nothing (or a pooler in session mode), or a
# pooler in transaction mode (PgBouncer's `pool_mode = transaction`), which lends a server
# connection per transaction only (`db.open_pool`).
DatabasePooler = Literal["none", "transaction"]

MiB = 1024 * 1024
Number = TypeVar("Number", int, float)


class ConfigError(Exception):
    """A configuration value is missing or malformed; the message is one line."""


def _key_prefix(raw: str) -> str:
    # Keys are joined as prefix + key, so a prefix names a "folder": it ends in "/".
    if raw.startswith("/") or ".." in raw:
        raise ValueError("must be a relative key prefix like 'mediasvc/'")
    return raw if raw.endswith("/") else raw + "/"


def _url_prefix(raw: str) -> str:
    # Variant paths are appended as prefix + "/" + key.
    return raw.rstrip("/")


def _signing_secret(raw: str) -> str:
    # nginx's secure_link checks it, so it is written into nginx config: keep it to
    # characters that need no quoting there, and long enough not to be guessed.
    if not re.fullmatch(r"[A-Za-z0-9_-]{32,}", raw):
        raise ValueError("must be at least 32 characters of A-Z a-z 0-9 _ -")
    return raw


def _jwt_secret(raw: str) -> str:
    # RFC 7518 3.2: an HS256 key must be at least as long as the hash output (256 bits),
    # or tokens can be forged by guessing the key offline from any one token.
    if len(raw.encode()) < 32:
        raise ValueError("must be at least 32 bytes")
    return raw


def _origins(raw: str) -> tuple[str, ...]:
    # Comma-separated exact origins (`origins.parse_origin`), in their one spelling.
    return tuple(dict.fromkeys(parse_origin(item.strip()) for item in raw.split(",") if item))


def _networks(raw: str) -> tuple[str, ...]:
    # Comma-separated addresses or CIDR networks, in nginx's `set_real_ip_from` spelling.
    items = (item.strip() for item in raw.split(",") if item.strip())
    return tuple(dict.fromkeys(str(ipaddress.ip_network(item, strict=False)) for item in items))


def _cookie_name(raw: str) -> str:
    # RFC 6265's token characters, so `__Secure-` prefixed names work too.
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}", raw):
        raise ValueError("must be a cookie name (letters, digits and !#$%&'*+.^_`|~-)")
    return raw


def _http_url(raw: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+(/\S*)?", raw):
        raise ValueError("must be an http:// or https:// URL")
    return raw


def _http_urls(raw: str) -> tuple[str, ...]:
    # Comma-separated, each as `_http_url`; a repeat counts once.
    urls = tuple(dict.fromkeys(_http_url(item.strip()) for item in raw.split(",") if item.strip()))
    if not urls:
        raise ValueError("must be one or more http:// or https:// URLs, comma-separated")
    return urls


def _webhook_secret(raw: str) -> bytes:
    # Standard Webhooks: `whsec_` and the base64 (padded or not) of a random key of 24 to 64
    # bytes; the key is those bytes. Strict, where the reference library drops stray
    # characters and takes any length.
    encoded = raw.removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        key = b""
    if not raw.startswith("whsec_") or not 24 <= len(key) <= 64:
        raise ValueError(
            "must be whsec_ and the base64 of 24 to 64 random bytes"
            " (e.g. whsec_$(openssl rand -base64 32))"
        )
    return key


def _read_text(raw: str) -> str:
    try:
        return Path(raw).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read {raw}: {exc.strerror}") from None


def _read_kinds_table(raw: str) -> Mapping[str, Any]:
    """The kinds file at `raw` (TOML): its `[kinds.NAME]` tables, and the optional top-level
    `builtins` (false: no `post` and `avatar` of the service's own) and `default` (the kind
    of an upload that names none). `kinds.kind_rules` checks the kinds' values."""
    try:
        document = tomllib.loads(Path(raw).read_text())
    except OSError as exc:
        raise ValueError(f"cannot read {raw}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"kinds", "builtins", "default"})
    if unknown:
        raise ValueError(
            f"unknown key {unknown[0]!r}; expected [kinds.NAME] tables, builtins, default"
        )
    if not isinstance(document.get("kinds", {}), dict):
        raise ValueError("'kinds' must be a table of [kinds.NAME] tables")
    if not isinstance(document.get("builtins", True), bool):
        raise ValueError("'builtins' must be true or false")
    if not isinstance(document.get("default", ""), str):
        raise ValueError("'default' must be a kind's name")
    return document


def _choice(literal: object) -> Callable[[str], str]:
    """A parser that accepts only the values of a `Literal` type."""
    allowed: tuple[str, ...] = get_args(literal)

    def choice(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return raw

    return choice


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


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError("must be true or false")


_positive = _checked(int, lambda v: v > 0, "must be a positive integer")
_non_negative = _checked(int, lambda v: v >= 0, "must be zero or more")
_positive_float = _checked(float, lambda v: v > 0, "must be a positive number")
_non_negative_float = _checked(float, lambda v: v >= 0, "must be zero or more")
_port = _checked(int, lambda v: 0 < v < 65536, "must be a TCP port (1-65535)")
_quality = _checked(int, lambda v: 1 <= v <= 100, "must be between 1 and 100")
_pdq_distance = _checked(int, lambda v: 0 <= v <= 255, "must be between 0 and 255")


def _env(
    name: str,
    parse: Callable[[str], Any] = str,
    *,
    required: bool = False,
    from_file: bool = False,
) -> dict[str, Any]:
    """Field metadata: the field is read from `MEDIASVC_<name>` by `parse`.

    Unset or empty, the field keeps its dataclass default, or stops startup if `required`.
    `from_file`: the variable names a file and the field holds what was read from it, which
    `Settings.to_env` cannot write back.
    """
    return {"env": name, "parse": parse, "required": required, "from_file": from_file}


def _written(value: object) -> str:
    """A field's value as its variable spells it: what its parser reads back to `value`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, bytes):
        # The webhook secret, in the Standard Webhooks spelling `_webhook_secret` reads.
        return "whsec_" + base64.b64encode(value).decode()
    return str(value)


# `media_dir` and `spool_dir` before `__post_init__` puts them under `data_dir`.
_UNDER_DATA_DIR = cast(Path, None)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment, validated.

    Each field is one setting: its default, and in its metadata (`_env`) the variable it is
    read from and the parser that checks it. Rules that tie settings together are spelled
    out in `from_env`.
    """

    database_url: str = field(metadata=_env("DATABASE_URL", required=True))
    url_signing_secret: str = field(
        repr=False, metadata=_env("URL_SIGNING_SECRET", _signing_secret, required=True)
    )
    database_pooler: DatabasePooler = field(
        default="none", metadata=_env("DATABASE_POOLER", _choice(DatabasePooler))
    )
    # A connection straight to PostgreSQL for LISTEN, which a transaction pooler cannot
    # carry (`listen_url`).
    database_listen_url: str | None = field(default=None, metadata=_env("DATABASE_LISTEN_URL"))
    # At least one of the three keys is required: the secret (HS256), a public key file (RS256)
    # or an identity provider's key set (RS256/ES256 by `kid`).
    jwt_secret: str | None = field(
        default=None, repr=False, metadata=_env("JWT_SECRET", _jwt_secret)
    )
    jwt_public_key: str | None = field(
        default=None, repr=False, metadata=_env("JWT_PUBLIC_KEY_FILE", _read_text, from_file=True)
    )
    jwt_jwks_url: str | None = field(default=None, metadata=_env("JWT_JWKS_URL", _http_url))
    # Checked against every token's `iss` / `aud` when set; both required with a JWKS URL.
    jwt_issuer: str | None = field(default=None, metadata=_env("JWT_ISSUER"))
    jwt_audience: str | None = field(default=None, metadata=_env("JWT_AUDIENCE"))
    # Browser apps on these origins may call the API (CORS) and post forms with the cookie.
    cors_origins: tuple[str, ...] = field(default=(), metadata=_env("CORS_ORIGINS", _origins))
    # The cookie a session token may come in when there is no Authorization header.
    auth_cookie: str | None = field(default=None, metadata=_env("AUTH_COOKIE", _cookie_name))
    # Whether anyone who may read a public media also sees its `owner` (the uploader's
    # token subject, often an email address); off, only the owner, admins and a space's
    # members do (`web.access.shows_owner`).
    public_owner: bool = field(default=False, metadata=_env("PUBLIC_OWNER", _bool))
    # The claim listing the spaces a token's holder may see (see `mediasvc.spaces`).
    jwt_spaces_claim: str = field(default=DEFAULT_CLAIM, metadata=_env("JWT_SPACES_CLAIM"))
    # The claim naming the owner (a string, or a number taken as its decimal string).
    jwt_subject_claim: str = field(
        default=DEFAULT_SUBJECT_CLAIM, metadata=_env("JWT_SUBJECT_CLAIM")
    )
    # The claim that, when `true`, makes the holder an admin: namespaced, so that a
    # product's own `role` or `admin` claim never grants it.
    jwt_admin_claim: str = field(default=DEFAULT_ADMIN_CLAIM, metadata=_env("JWT_ADMIN_CLAIM"))
    # The claim listing the spaces the holder manages (may empty): see `mediasvc.claims`.
    jwt_manage_claim: str = field(default=DEFAULT_MANAGE_CLAIM, metadata=_env("JWT_MANAGE_CLAIM"))
    data_dir: Path = field(default=Path("var"), metadata=_env("DATA_DIR", Path))
    # Unset, these two sit under `data_dir`, wherever it is (`__post_init__`).
    media_dir: Path = field(default=_UNDER_DATA_DIR, metadata=_env("MEDIA_DIR", Path))
    spool_dir: Path = field(default=_UNDER_DATA_DIR, metadata=_env("SPOOL_DIR", Path))
    app_host: str = field(default="127.0.0.1", metadata=_env("APP_HOST"))
    app_port: int = field(default=8081, metadata=_env("APP_PORT", _port))
    app_nodes: int = field(default=1, metadata=_env("APP_NODES", _positive))
    http_port: int = field(default=8080, metadata=_env("HTTP_PORT", _port))
    public_media_url: str = field(default="/media", metadata=_env("PUBLIC_MEDIA_URL", _url_prefix))
    private_media_url: str = field(
        default="/private", metadata=_env("PRIVATE_MEDIA_URL", _url_prefix)
    )
    signed_url_ttl_s: int = field(default=300, metadata=_env("SIGNED_URL_TTL", _positive))
    # How long an upload session waits for its bytes (and its upload URL stays valid).
    upload_session_ttl_s: int = field(default=900, metadata=_env("UPLOAD_SESSION_TTL_S", _positive))
    collection_max: int = field(default=5, metadata=_env("COLLECTION_MAX", _positive))
    # None: unlimited.
    owner_max_media: int | None = field(default=None, metadata=_env("OWNER_MAX_MEDIA", _positive))
    owner_max_bytes: int | None = field(default=None, metadata=_env("OWNER_MAX_BYTES", _positive))
    owner_max_inflight: int = field(default=2, metadata=_env("OWNER_MAX_INFLIGHT", _positive))
    storage: StorageKind = field(default="local", metadata=_env("STORAGE", _choice(StorageKind)))
    # Required when `storage` is s3.
    s3_bucket: str = field(default="", metadata=_env("S3_BUCKET"))
    s3_endpoint_url: str | None = field(default=None, metadata=_env("S3_ENDPOINT_URL"))
    s3_region: str = field(default="us-east-1", metadata=_env("S3_REGION"))
    s3_prefix: str = field(default="", metadata=_env("S3_PREFIX", _key_prefix))
    s3_addressing_style: AddressingStyle = field(
        default="path", metadata=_env("S3_ADDRESSING_STYLE", _choice(AddressingStyle))
    )
    storage_timeout_s: float = field(
        default=10.0, metadata=_env("STORAGE_TIMEOUT_S", _positive_float)
    )
    nginx_cache_size_mb: int = field(default=1024, metadata=_env("NGINX_CACHE_SIZE_MB", _positive))
    nginx_cache_ttl_s: int = field(default=60, metadata=_env("NGINX_CACHE_TTL_S", _positive))
    # nginx's cache of bucket variants on this host, which this node purges of removed
    # variants (`mediasvc.nginxcache`); unset, the node purges none (another does, or
    # `cache-purger`).
    nginx_cache_dir: Path | None = field(default=None, metadata=_env("NGINX_CACHE_DIR", Path))
    # Each verified user's requests per minute, across every node (`mediasvc.budgets`);
    # 0 turns one off. Admins have none.
    user_uploads_per_min: int = field(
        default=60, metadata=_env("USER_UPLOADS_PER_MIN", _non_negative)
    )
    user_deletes_per_min: int = field(
        default=120, metadata=_env("USER_DELETES_PER_MIN", _non_negative)
    )
    user_reads_per_min: int = field(
        default=1200, metadata=_env("USER_READS_PER_MIN", _non_negative)
    )
    # An upload whose PDQ hash is within this many of 256 bits of a blocklist entry's is
    # refused (`db.blocklist`); 31 is Meta's threshold for "the same picture".
    blocklist_pdq_distance: int = field(
        default=31, metadata=_env("BLOCKLIST_PDQ_DISTANCE", _pdq_distance)
    )
    # nginx's guards per address (and per token for uploads) against floods, generous: a
    # product's backend calls for all its users from one address. What one user may do is
    # the per-user budgets above, counted by the app.
    rate_uploads_per_min: int = field(default=600, metadata=_env("RATE_UPLOADS_PER_MIN", _positive))
    rate_uploads_burst: int = field(default=100, metadata=_env("RATE_UPLOADS_BURST", _non_negative))
    rate_api_per_s: int = field(default=100, metadata=_env("RATE_API_PER_S", _positive))
    rate_api_burst: int = field(default=200, metadata=_env("RATE_API_BURST", _non_negative))
    # Balancers in front of nginx whose X-Forwarded-For names the client (`set_real_ip_from`):
    # nginx's limits and logs then see the client's address, not the balancer's.
    trusted_proxies: tuple[str, ...] = field(
        default=(), metadata=_env("TRUSTED_PROXIES", _networks)
    )
    # Variant reads from a bucket, per address: a page shows dozens of images at once and
    # many users may share one address (NAT), so well above the API's.
    rate_media_per_s: int = field(default=200, metadata=_env("RATE_MEDIA_PER_S", _positive))
    rate_media_burst: int = field(default=400, metadata=_env("RATE_MEDIA_BURST", _non_negative))
    conn_per_ip: int = field(default=32, metadata=_env("CONN_PER_IP", _positive))
    client_timeout_s: int = field(default=30, metadata=_env("CLIENT_TIMEOUT_S", _positive))
    max_upload_bytes: int = field(default=25 * MiB, metadata=_env("MAX_UPLOAD_BYTES", _positive))
    max_pixels: int = field(
        default=DEFAULT_RULES.max_pixels, metadata=_env("MAX_PIXELS", _positive)
    )
    max_frames: int = field(
        default=DEFAULT_RULES.max_frames, metadata=_env("MAX_FRAMES", _positive)
    )
    # The largest longest side a kind's ladder may ask for (`sizes` in the kinds file).
    max_variant_size: int = field(
        default=DEFAULT_MAX_VARIANT_SIZE, metadata=_env("MAX_VARIANT_SIZE", _positive)
    )
    max_animation_pixels: int = field(
        default=DEFAULT_RULES.max_animation_pixels,
        metadata=_env("MAX_ANIMATION_PIXELS", _positive),
    )
    output_format: OutputFormat = field(
        default="webp", metadata=_env("OUTPUT_FORMAT", _choice(OutputFormat))
    )
    output_quality: int = field(
        default=DEFAULT_RULES.quality, metadata=_env("OUTPUT_QUALITY", _quality)
    )
    workers: int = field(
        default_factory=lambda: os.cpu_count() or 1, metadata=_env("WORKERS", _positive)
    )
    queue_max: int = field(default=16, metadata=_env("QUEUE_MAX", _non_negative))
    job_timeout_s: float = field(default=60.0, metadata=_env("JOB_TIMEOUT_S", _positive_float))
    worker_memory_mb: int = field(default=1536, metadata=_env("WORKER_MEMORY_MB", _positive))
    # Where a seccomp filter refuses Landlock (EPERM), workers would run without their
    # domain (imaging.confine.check_landlock): the node refuses to start unless this is set.
    allow_unconfined_workers: bool = field(
        default=False, metadata=_env("ALLOW_UNCONFINED_WORKERS", _bool)
    )
    reaper_interval_s: float = field(
        default=300.0, metadata=_env("REAPER_INTERVAL_S", _positive_float)
    )
    reaper_grace_s: float = field(
        default=900.0, metadata=_env("REAPER_GRACE_S", _non_negative_float)
    )
    # How often one node (whichever takes the lock first) computes the usage gauges, which
    # every node then reports (`mediasvc.usage`).
    usage_interval_s: float = field(
        default=300.0, metadata=_env("USAGE_INTERVAL_S", _positive_float)
    )
    # How often each node looks for auto-completing sessions due for a look (each session's
    # own looks back off from 1 s to 30 s: `db.queries.CLAIM_AUTO_COMPLETE`).
    auto_complete_interval_s: float = field(
        default=1.0, metadata=_env("AUTO_COMPLETE_INTERVAL_S", _positive_float)
    )
    db_timeout_s: float = field(default=10.0, metadata=_env("DB_TIMEOUT_S", _positive_float))
    # Events (`mediasvc.events`): where webhooks go (none: no events are recorded), the key
    # that signs them (required with a URL), and how long one attempt and all retries last.
    webhook_urls: tuple[str, ...] = field(default=(), metadata=_env("WEBHOOK_URL", _http_urls))
    webhook_secret: bytes | None = field(
        default=None, repr=False, metadata=_env("WEBHOOK_SECRET", _webhook_secret)
    )
    webhook_timeout_s: float = field(
        default=10.0, metadata=_env("WEBHOOK_TIMEOUT_S", _positive_float)
    )
    webhook_retry_s: float = field(
        default=24 * 3600.0, metadata=_env("WEBHOOK_RETRY_S", _non_negative_float)
    )
    # The first retry's delay; it doubles with each failed attempt, up to an hour.
    webhook_backoff_s: float = field(
        default=5.0, metadata=_env("WEBHOOK_BACKOFF_S", _positive_float)
    )
    # The moderation hook (`mediasvc.moderation`) of kinds with `moderation = "hook"`: where
    # each processed upload is sent before it is shown, the key that signs the request
    # (required with a URL), and how long its answer may take.
    moderation_url: str | None = field(default=None, metadata=_env("MODERATION_URL", _http_url))
    moderation_secret: bytes | None = field(
        default=None, repr=False, metadata=_env("MODERATION_SECRET", _webhook_secret)
    )
    moderation_timeout_s: float = field(
        default=10.0, metadata=_env("MODERATION_TIMEOUT_S", _positive_float)
    )
    log_format: LogFormat = field(default="auto", metadata=_env("LOG_FORMAT", _choice(LogFormat)))
    # The `[kinds]` table of MEDIASVC_KINDS_FILE; `kinds.kind_rules` turns it into rules
    # (`create_app` does, once: a bad table stops startup there).
    kinds_table: Mapping[str, Any] = field(
        default_factory=dict, metadata=_env("KINDS_FILE", _read_kinds_table, from_file=True)
    )
    # Only `python -m mediasvc dev` sets it: the upload page then offers this token.
    dev_token: str | None = field(default=None, repr=False, metadata=_env("DEV_TOKEN"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `MEDIASVC_*` variables (default: `os.environ`).

        A variable that is unset or empty leaves its field at the dataclass default.
        """
        src = os.environ if env is None else env
        values: dict[str, Any] = {}
        for setting in fields(cls):
            value = _read(src, setting)
            if value is not _UNSET:
                values[setting.name] = value
        # With a public key (RS256) or a provider's key set no shared secret is needed.
        if not {"jwt_secret", "jwt_public_key", "jwt_jwks_url"} & values.keys():
            raise ConfigError(
                "MEDIASVC_JWT_SECRET is required and not set"
                " (or MEDIASVC_JWT_PUBLIC_KEY_FILE, or MEDIASVC_JWT_JWKS_URL)"
            )
        for given, needed in _REQUIRED_WITH.items():
            for name in needed:
                if given in values and name not in values:
                    raise ConfigError(f"{env_name(name)} is required with {env_name(given)}")
        if values.get("storage") == "s3" and "s3_bucket" not in values:
            raise _missing("S3_BUCKET")
        return cls(**values)

    def __post_init__(self) -> None:
        for name, under in (("media_dir", "media"), ("spool_dir", "spool")):
            if getattr(self, name) is _UNDER_DATA_DIR:
                # Frozen: set once, here, as the generated __init__ sets the others.
                object.__setattr__(self, name, self.data_dir / under)

    def to_env(self) -> dict[str, str]:
        """The `MEDIASVC_*` variables `from_env` reads back to these settings, for a child
        process (`serve` beside `dev`, a test's node).

        Unset fields (None, empty) are left out, as are fields read from a file
        (`MEDIASVC_JWT_PUBLIC_KEY_FILE`, `MEDIASVC_KINDS_FILE`): their variable names the
        file, which the caller passes along.
        """
        env = {}
        for setting in fields(self):
            value = getattr(self, setting.name)
            if value in (None, "", ()) or setting.metadata["from_file"]:
                continue
            env[f"MEDIASVC_{setting.metadata['env']}"] = _written(value)
        return env

    @property
    def listen_url(self) -> str | None:
        """Where to LISTEN for wake-ups: `database_listen_url`, else `database_url` unless a
        transaction pooler is in between (a LISTEN would stay on a server connection that
        other clients borrow); None: nowhere, poll instead."""
        if self.database_listen_url is not None:
            return self.database_listen_url
        return self.database_url if self.database_pooler == "none" else None

    @property
    def image_rules(self) -> ImageRules:
        """The global checks and output every kind starts from."""
        return ImageRules(
            output_format=self.output_format,
            quality=self.output_quality,
            max_pixels=self.max_pixels,
            max_frames=self.max_frames,
            max_animation_pixels=self.max_animation_pixels,
        )

    @property
    def body_limit_bytes(self) -> int:
        """The request-body cap nginx enforces: the file cap plus room for the form around it."""
        return self.max_upload_bytes + 64 * 1024


def setting_from_env(name: str, env: Mapping[str, str] | None = None) -> Any:
    """One setting (a field's name), read and checked as `from_env` does, or its default:
    for commands that need only a few and none of the others (migrate, events, token)."""
    setting = _FIELDS[name]
    value = _read(os.environ if env is None else env, setting)
    if value is not _UNSET:
        return value
    if setting.default_factory is not MISSING:
        return setting.default_factory()
    return setting.default


def env_name(name: str) -> str:
    """The variable a setting (a field's name) is read from: `MEDIASVC_...`."""
    return f"MEDIASVC_{_FIELDS[name].metadata['env']}"


def database_url_from_env(env: Mapping[str, str] | None = None) -> str:
    """Only `MEDIASVC_DATABASE_URL`, for commands that need nothing else (migrate, events)."""
    value: str = setting_from_env("database_url", env)
    return value


_FIELDS = {setting.name: setting for setting in fields(Settings)}
# Settings that work only with others: with the first set, each of the others is required.
_REQUIRED_WITH = {
    # A provider's keys sign tokens for many services: only its issuer and this audience
    # make a token one for us.
    "jwt_jwks_url": ("jwt_issuer", "jwt_audience"),
    "webhook_urls": ("webhook_secret",),
    "moderation_url": ("moderation_secret",),
}
_UNSET: Any = object()


def _read(env: Mapping[str, str], setting: Field[Any]) -> Any:
    """The parsed value of one setting's variable, or `_UNSET` when it is unset or empty."""
    name: str = setting.metadata["env"]
    raw = env.get(f"MEDIASVC_{name}", "")
    if not raw:
        if setting.metadata["required"]:
            raise _missing(name)
        return _UNSET
    try:
        return setting.metadata["parse"](raw)
    except ValueError as exc:
        # Secrets (fields kept out of the repr) are not echoed back.
        shown = f"={raw!r}" if setting.repr else ""
        raise ConfigError(f"MEDIASVC_{name}{shown}: {exc}") from None


def _missing(name: str) -> ConfigError:
    return ConfigError(f"MEDIASVC_{name} is required and not set")

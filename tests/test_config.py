"""Settings from the environment: defaults, overrides, and one-line refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediasvc.config import ConfigError, Settings, env_name, setting_from_env
from mediasvc.spaces import DEFAULT_CLAIM

REQUIRED = {
    "MEDIASVC_DATABASE_URL": "postgresql://x@127.0.0.1/db",
    "MEDIASVC_JWT_SECRET": "s" * 32,
    "MEDIASVC_URL_SIGNING_SECRET": "k" * 32,
}


def test_defaults_put_media_and_spool_under_the_data_dir() -> None:
    """Only the data dir is needed to place media and spool."""
    settings = Settings.from_env({**REQUIRED, "MEDIASVC_DATA_DIR": "/srv/m"})
    assert settings.media_dir == Path("/srv/m/media")
    assert settings.spool_dir == Path("/srv/m/spool")
    assert settings.output_format == "webp"
    assert settings.http_port == 8080


def test_defaults_are_the_dataclass_defaults() -> None:
    """Unset variables leave every field at the default `Settings(...)` itself has."""
    assert Settings.from_env(REQUIRED) == Settings(
        database_url=REQUIRED["MEDIASVC_DATABASE_URL"],
        url_signing_secret=REQUIRED["MEDIASVC_URL_SIGNING_SECRET"],
        jwt_secret=REQUIRED["MEDIASVC_JWT_SECRET"],
    )


def test_empty_variables_count_as_unset() -> None:
    """`VAR=` in an env file keeps the default, as if the line were absent."""
    settings = Settings.from_env({**REQUIRED, "MEDIASVC_HTTP_PORT": "", "MEDIASVC_STORAGE": ""})
    assert settings.http_port == 8080
    assert settings.storage == "local"


def test_workers_default_to_the_cpu_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without MEDIASVC_WORKERS, one image worker per core."""
    monkeypatch.setattr("os.cpu_count", lambda: 7)
    assert Settings.from_env(REQUIRED).workers == 7
    assert Settings.from_env({**REQUIRED, "MEDIASVC_WORKERS": "3"}).workers == 3


def test_url_prefixes_lose_their_trailing_slash() -> None:
    """Variant URLs are joined with "/", so a configured trailing one is dropped."""
    settings = Settings.from_env(
        {
            **REQUIRED,
            "MEDIASVC_PUBLIC_MEDIA_URL": "https://cdn.example.com/media/",
            "MEDIASVC_PRIVATE_MEDIA_URL": "/private/",
        }
    )
    assert settings.public_media_url == "https://cdn.example.com/media"
    assert settings.private_media_url == "/private"


def test_explicit_media_and_spool_dirs_win_over_the_data_dir() -> None:
    """MEDIA_DIR and SPOOL_DIR, when set, are used as given."""
    settings = Settings.from_env(
        {
            **REQUIRED,
            "MEDIASVC_DATA_DIR": "/srv/m",
            "MEDIASVC_MEDIA_DIR": "/mnt/media",
            "MEDIASVC_SPOOL_DIR": "/tmp/spool",
        }
    )
    assert settings.media_dir == Path("/mnt/media")
    assert settings.spool_dir == Path("/tmp/spool")


def test_issuer_audience_and_owner_limits_are_read() -> None:
    """Token checks and per-owner limits are optional; set, they arrive typed."""
    defaults = Settings.from_env(REQUIRED)
    assert (defaults.jwt_issuer, defaults.jwt_audience) == (None, None)
    assert (defaults.owner_max_media, defaults.owner_max_bytes) == (None, None)
    assert defaults.owner_max_inflight == 2
    settings = Settings.from_env(
        {
            **REQUIRED,
            "MEDIASVC_JWT_ISSUER": "https://id.example.com/",
            "MEDIASVC_JWT_AUDIENCE": "mediasvc",
            "MEDIASVC_OWNER_MAX_MEDIA": "1000",
            "MEDIASVC_OWNER_MAX_BYTES": "1073741824",
            "MEDIASVC_OWNER_MAX_INFLIGHT": "4",
        }
    )
    assert settings.jwt_issuer == "https://id.example.com/"
    assert settings.jwt_audience == "mediasvc"
    assert settings.owner_max_media == 1000
    assert settings.owner_max_bytes == 1073741824
    assert settings.owner_max_inflight == 4


def test_values_are_parsed_to_their_types() -> None:
    """Numbers and choices arrive typed."""
    settings = Settings.from_env(
        {
            **REQUIRED,
            "MEDIASVC_MAX_UPLOAD_BYTES": "1000",
            "MEDIASVC_OUTPUT_FORMAT": "avif",
            "MEDIASVC_JOB_TIMEOUT_S": "2.5",
        }
    )
    assert settings.max_upload_bytes == 1000
    assert settings.output_format == "avif"
    assert settings.job_timeout_s == 2.5


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("TRUE", True), ("1", True), ("false", False)]
)
def test_public_owner_is_a_boolean_off_by_default(value: str, expected: bool) -> None:
    """MEDIASVC_PUBLIC_OWNER is off unless set, and reads the usual spellings of a boolean."""
    assert Settings.from_env(REQUIRED).public_owner is False
    assert Settings.from_env({**REQUIRED, "MEDIASVC_PUBLIC_OWNER": value}).public_owner is expected


def test_media_reads_have_their_own_rate_above_the_api_one() -> None:
    """Variant reads default to 200/s with a burst of 400 and are set apart from the API's."""
    defaults = Settings.from_env(REQUIRED)
    assert (defaults.rate_api_per_s, defaults.rate_api_burst) == (100, 200)
    assert (defaults.rate_media_per_s, defaults.rate_media_burst) == (200, 400)
    settings = Settings.from_env(
        {**REQUIRED, "MEDIASVC_RATE_MEDIA_PER_S": "50", "MEDIASVC_RATE_MEDIA_BURST": "0"}
    )
    assert (settings.rate_media_per_s, settings.rate_media_burst) == (50, 0)
    assert (settings.rate_api_per_s, settings.rate_api_burst) == (100, 200)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MEDIASVC_MAX_UPLOAD_BYTES", "lots", "MEDIASVC_MAX_UPLOAD_BYTES='lots'"),
        ("MEDIASVC_MAX_PIXELS", "-1", "must be a positive integer"),
        ("MEDIASVC_HTTP_PORT", "70000", "must be a TCP port"),
        ("MEDIASVC_OUTPUT_FORMAT", "bmp", "expected one of webp, jpeg, avif"),
        ("MEDIASVC_OUTPUT_QUALITY", "0", "between 1 and 100"),
        ("MEDIASVC_JWT_PUBLIC_KEY_FILE", "/nonexistent.pem", "cannot read"),
        ("MEDIASVC_URL_SIGNING_SECRET", "short", "at least 32 characters"),
        ("MEDIASVC_URL_SIGNING_SECRET", "x" * 31 + '"', "at least 32 characters"),
        ("MEDIASVC_JWT_SECRET", "s" * 31, "at least 32 bytes"),
        ("MEDIASVC_OWNER_MAX_MEDIA", "0", "must be a positive integer"),
        ("MEDIASVC_OWNER_MAX_BYTES", "10MB", "MEDIASVC_OWNER_MAX_BYTES='10MB'"),
        ("MEDIASVC_OWNER_MAX_INFLIGHT", "0", "must be a positive integer"),
        ("MEDIASVC_STORAGE", "ftp", "expected one of local, s3"),
        ("MEDIASVC_RATE_MEDIA_PER_S", "0", "must be a positive integer"),
        ("MEDIASVC_RATE_MEDIA_BURST", "-1", "must be zero or more"),
        ("MEDIASVC_PUBLIC_OWNER", "maybe", "must be true or false"),
    ],
)
def test_bad_values_stop_startup_with_one_line(name: str, value: str, message: str) -> None:
    """A bad value names the variable and the problem on a single line."""
    with pytest.raises(ConfigError, match=message) as caught:
        Settings.from_env({**REQUIRED, name: value})
    assert "\n" not in str(caught.value)
    assert name in str(caught.value)


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_database_url_and_secret_are_required(missing: str) -> None:
    """No default secret, no default database."""
    env = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(ConfigError, match=f"{missing} is required"):
        Settings.from_env(env)


def test_short_jwt_secret_is_not_echoed() -> None:
    """A refused secret is named, not printed."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**REQUIRED, "MEDIASVC_JWT_SECRET": "hunter2"})
    assert "hunter2" not in str(caught.value)


def test_s3_storage_needs_a_bucket() -> None:
    """MEDIASVC_S3_BUCKET is required only with MEDIASVC_STORAGE=s3."""
    with pytest.raises(ConfigError, match="MEDIASVC_S3_BUCKET is required"):
        Settings.from_env({**REQUIRED, "MEDIASVC_STORAGE": "s3"})
    settings = Settings.from_env({**REQUIRED, "MEDIASVC_STORAGE": "s3", "MEDIASVC_S3_BUCKET": "b"})
    assert settings.s3_bucket == "b"


def test_public_key_replaces_the_shared_secret(tmp_path: Path) -> None:
    """With an RS256 public key, no HS256 secret is needed."""
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PUBLIC KEY-----\n")
    settings = Settings.from_env(
        {
            "MEDIASVC_DATABASE_URL": "postgresql://x/db",
            "MEDIASVC_URL_SIGNING_SECRET": "k" * 32,
            "MEDIASVC_JWT_PUBLIC_KEY_FILE": str(key),
        }
    )
    assert settings.jwt_secret is None
    assert settings.jwt_public_key == "-----BEGIN PUBLIC KEY-----\n"


def test_secret_is_not_in_the_repr() -> None:
    """Settings may be logged without leaking the secret."""
    settings = Settings.from_env(
        {**REQUIRED, "MEDIASVC_JWT_SECRET": "hunter2-very-secret-" + "x" * 16}
    )
    assert "hunter2" not in repr(settings)


def test_media_and_spool_follow_the_data_dir_however_settings_are_made() -> None:
    """One default each: unset, media and spool sit under the data dir, from the
    environment or built directly."""
    built = Settings(database_url="x", url_signing_secret="k" * 32, data_dir=Path("/srv/m"))
    assert (built.media_dir, built.spool_dir) == (Path("/srv/m/media"), Path("/srv/m/spool"))
    moved = Settings(database_url="x", url_signing_secret="k" * 32, spool_dir=Path("/fast"))
    assert (moved.media_dir, moved.spool_dir) == (Path("var/media"), Path("/fast"))


def test_to_env_is_read_back_to_the_same_settings(tmp_path: Path) -> None:
    """`from_env(settings.to_env())` gives the settings back, every kind of field included."""
    settings = Settings.from_env(
        {
            **REQUIRED,
            "MEDIASVC_DATA_DIR": str(tmp_path),
            "MEDIASVC_SPOOL_DIR": "/fast/spool",
            "MEDIASVC_WORKERS": "3",
            "MEDIASVC_JOB_TIMEOUT_S": "0.05",
            "MEDIASVC_OWNER_MAX_MEDIA": "7",
            "MEDIASVC_PUBLIC_OWNER": "yes",
            "MEDIASVC_CORS_ORIGINS": "https://App.example, http://localhost:3000",
            "MEDIASVC_STORAGE": "s3",
            "MEDIASVC_S3_BUCKET": "b",
            "MEDIASVC_S3_PREFIX": "media",
            "MEDIASVC_WEBHOOK_URL": "https://a.example/hook,https://b.example/",
            "MEDIASVC_WEBHOOK_SECRET": "whsec_" + "A" * 32,
            "MEDIASVC_PUBLIC_MEDIA_URL": "https://cdn.example/media/",
        }
    )
    assert Settings.from_env(settings.to_env()) == settings
    assert settings.to_env()["MEDIASVC_PUBLIC_OWNER"] == "true"
    assert "MEDIASVC_OWNER_MAX_BYTES" not in settings.to_env()  # None: unset


def test_to_env_leaves_settings_read_from_files_to_their_variable(tmp_path: Path) -> None:
    """A kinds file's table has no variable of its own: the caller passes the file's."""
    kinds = tmp_path / "kinds.toml"
    kinds.write_text("[kinds.chat]\nmax_bytes = 1000\n")
    env = {**REQUIRED, "MEDIASVC_KINDS_FILE": str(kinds)}
    settings = Settings.from_env(env)
    assert "MEDIASVC_KINDS_FILE" not in settings.to_env()
    assert Settings.from_env({**settings.to_env(), "MEDIASVC_KINDS_FILE": str(kinds)}) == settings


def test_setting_from_env_reads_one_setting_or_its_default() -> None:
    """A command that needs one setting reads it as `from_env` would, default included."""
    assert setting_from_env("data_dir", {}) == Path("var")
    assert setting_from_env("jwt_spaces_claim", {}) == DEFAULT_CLAIM
    assert setting_from_env("jwt_issuer", {"MEDIASVC_JWT_ISSUER": "https://id"}) == "https://id"
    with pytest.raises(ConfigError, match="MEDIASVC_DATABASE_URL is required"):
        setting_from_env("database_url", {})
    assert env_name("data_dir") == "MEDIASVC_DATA_DIR"

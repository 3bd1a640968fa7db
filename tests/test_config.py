"""Settings from the environment: defaults, overrides, and one-line refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediasvc.config import ConfigError, Settings

REQUIRED = {
    "MEDIASVC_DATABASE_URL": "postgresql://x@127.0.0.1/db",
    "MEDIASVC_JWT_SECRET": "s",
    "MEDIASVC_URL_SIGNING_SECRET": "k" * 32,
}


def test_defaults_put_media_and_spool_under_the_data_dir() -> None:
    """Only the data dir is needed to place media and spool."""
    settings = Settings.from_env({**REQUIRED, "MEDIASVC_DATA_DIR": "/srv/m"})
    assert settings.media_dir == Path("/srv/m/media")
    assert settings.spool_dir == Path("/srv/m/spool")
    assert settings.output_format == "webp"
    assert settings.http_port == 8080


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
    settings = Settings.from_env({**REQUIRED, "MEDIASVC_JWT_SECRET": "hunter2-very-secret"})
    assert "hunter2" not in repr(settings)

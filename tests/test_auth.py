"""Bearer tokens: what is accepted and what is refused."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mediasvc.auth import Principal, TokenVerifier, mint_token
from mediasvc.config import Settings
from mediasvc.errors import Unauthorized

SECRET = "s" * 40


def test_minted_token_verifies_to_its_subject() -> None:
    """A token from `mint_token` names its subject, not admin by default."""
    principal = TokenVerifier(secret=SECRET).verify(mint_token(SECRET, "alice"))
    assert principal == Principal(sub="alice", admin=False)


def test_admin_claim_is_carried() -> None:
    """`mediasvc_admin: true` makes an admin, who may act on anyone's media."""
    principal = TokenVerifier(secret=SECRET).verify(mint_token(SECRET, "root", admin=True))
    assert principal.admin
    assert principal.may_act_on("alice")
    assert not Principal("bob", admin=False).may_act_on("alice")


def _verified(claims: dict[str, object], **verifier: str) -> Principal:
    token = jwt.encode({"exp": int(time.time()) + 60, **claims}, SECRET, algorithm="HS256")
    return TokenVerifier(secret=SECRET, **verifier).verify(token)


class TestProductTokens:
    """Tokens as products mint them for their own purposes."""

    def test_a_numeric_subject_is_its_decimal_string(self) -> None:
        """A FastAPI product's `sub: 42` is the owner "42" (a bool is not a number)."""
        assert _verified({"sub": 42}).sub == "42"
        with pytest.raises(Unauthorized):
            _verified({"sub": True})
        with pytest.raises(Unauthorized):
            _verified({"sub": 4.2})

    @pytest.mark.parametrize(
        "claims",
        [{"role": "admin"}, {"admin": True}, {"mediasvc_admin": "true"}, {"mediasvc_admin": 1}],
    )
    def test_only_the_namespaced_admin_claim_set_to_true_grants_admin(
        self, claims: dict[str, object]
    ) -> None:
        """A product's own `role`/`admin` claims, or a truthy non-`true` value, grant nothing."""
        assert not _verified({"sub": "alice", **claims}).admin
        assert _verified({"sub": "alice", "mediasvc_admin": True}).admin

    def test_subject_and_admin_claims_can_be_renamed(self) -> None:
        """With `user_id` as the subject and `https://example.com/admin` as the admin
        claim, those are read, and `sub` alone is not enough."""
        names = {"subject_claim": "user_id", "admin_claim": "https://example.com/admin"}
        principal = _verified({"user_id": 7, "https://example.com/admin": True}, **names)
        assert principal == Principal(sub="7", admin=True)
        with pytest.raises(Unauthorized, match="'user_id'"):
            _verified({"sub": "alice"}, **names)

    def test_minted_tokens_use_the_configured_claim_names(self) -> None:
        """`mint_token` (the CLI's) writes the claims the verifier reads."""
        names = {"subject_claim": "uid", "admin_claim": "x_admin"}
        token = mint_token(SECRET, "root", admin=True, **names)
        assert TokenVerifier(secret=SECRET, **names).verify(token) == Principal("root", True)


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "alice"},  # no exp
        {"exp": int(time.time()) + 60},  # no sub
        {"sub": "alice", "exp": int(time.time()) - 3600},  # expired
        {"sub": "", "exp": int(time.time()) + 60},  # empty subject
    ],
    ids=["no-exp", "no-sub", "expired", "empty-sub"],
)
def test_tokens_without_required_claims_are_refused(claims: dict[str, object]) -> None:
    """`exp` and a non-empty `sub` are required; expired tokens are refused."""
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        TokenVerifier(secret=SECRET).verify(token)


def test_wrong_secret_and_alg_none_are_refused() -> None:
    """Signatures are checked and the algorithm is pinned."""
    claims = {"sub": "alice", "exp": int(time.time()) + 60}
    verifier = TokenVerifier(secret=SECRET)
    with pytest.raises(Unauthorized):
        verifier.verify(jwt.encode(claims, "other" * 10, algorithm="HS256"))
    with pytest.raises(Unauthorized):
        verifier.verify(jwt.encode(claims, None, algorithm="none"))


def test_rs256_with_a_public_key() -> None:
    """With a public key, RS256 tokens from the issuer verify and HS256 ones do not."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    verifier = TokenVerifier(secret=None, public_key=public_pem)
    claims = {"sub": "carol", "exp": int(time.time()) + 60}
    assert verifier.verify(jwt.encode(claims, private, algorithm="RS256")).sub == "carol"
    with pytest.raises(Unauthorized):
        verifier.verify(jwt.encode(claims, SECRET, algorithm="HS256"))


def _token(**claims: object) -> str:
    return jwt.encode({"sub": "alice", "exp": int(time.time()) + 60, **claims}, SECRET, "HS256")


ISSUER = "https://id.example.com/"
AUDIENCE = "mediasvc"


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": ISSUER, "aud": AUDIENCE},
        {"iss": ISSUER, "aud": ["other", AUDIENCE]},
    ],
    ids=["single-aud", "aud-list"],
)
def test_configured_issuer_and_audience_accept_matching_tokens(claims: dict[str, object]) -> None:
    """A token whose `iss` and `aud` match the configured ones verifies."""
    verifier = TokenVerifier(secret=SECRET, issuer=ISSUER, audience=AUDIENCE)
    assert verifier.verify(_token(**claims)).sub == "alice"


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": AUDIENCE},
        {"iss": "https://evil.example.com/", "aud": AUDIENCE},
        {"iss": ISSUER},
        {"iss": ISSUER, "aud": "another-service"},
        {"iss": ISSUER, "aud": []},
    ],
    ids=["no-iss", "wrong-iss", "no-aud", "wrong-aud", "empty-aud"],
)
def test_configured_issuer_and_audience_refuse_others(claims: dict[str, object]) -> None:
    """With issuer and audience configured, a missing or different `iss` or `aud` is refused."""
    verifier = TokenVerifier(secret=SECRET, issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(Unauthorized) as caught:
        verifier.verify(_token(**claims))
    assert caught.value.code == "unauthorized"
    assert caught.value.status == 401


def test_unconfigured_issuer_and_audience_are_not_checked() -> None:
    """Without issuer or audience settings, tokens verify whatever `iss` and `aud` they carry."""
    verifier = TokenVerifier(secret=SECRET)
    assert verifier.verify(_token()).sub == "alice"
    assert verifier.verify(_token(iss=ISSUER, aud="anything")).sub == "alice"
    assert verifier.verify(_token(aud=["a", "b"])).sub == "alice"


def test_verifier_from_settings_checks_the_configured_claims() -> None:
    """`from_settings` carries the secret, issuer and audience into the verifier."""
    settings = Settings(
        database_url="postgresql://x/db",
        url_signing_secret="k" * 32,
        jwt_secret=SECRET,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    )
    verifier = TokenVerifier.from_settings(settings)
    assert verifier.verify(_token(iss=ISSUER, aud=AUDIENCE)).sub == "alice"
    with pytest.raises(Unauthorized):
        verifier.verify(_token(iss=ISSUER))

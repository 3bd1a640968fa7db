"""Tokens from an identity provider: RS256/ES256 keys published as a JWKS (served here by the
test, on its own event loop, so a fetch made on the loop would hang), chosen by `kid`,
rotated without a restart, and never fetched more than the rules allow."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from support import JWT_SECRET, Client

from mediasvc.app import create_app
from mediasvc.auth import TokenVerifier, mint_token
from mediasvc.config import ConfigError, Settings
from mediasvc.errors import Unauthorized
from mediasvc.jwks import KeyFetchFailed, ProviderKeys
from mediasvc.stack.localproc import free_port

ISSUER = "https://id.example.com/"
AUDIENCE = "mediasvc"
COOLDOWN_S = 30.0


@dataclass(frozen=True)
class SigningKey:
    """One of the provider's key pairs."""

    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        """The public half as the provider publishes it."""
        algorithm = RSAAlgorithm if self.alg == "RS256" else ECAlgorithm
        public = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def sign(self, **claims: Any) -> str:
        """A token from this key, for `alice` at our audience unless `claims` say otherwise
        (a claim given as None is left out)."""
        body = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300}
        body.update(claims)
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, self.private, algorithm=self.alg, headers={"kid": self.kid})


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    """Two RSA keys (before and after a rotation) and an EC key."""
    return {
        "rsa-1": SigningKey("rsa-1", "RS256", rsa.generate_private_key(65537, 2048)),
        "rsa-2": SigningKey("rsa-2", "RS256", rsa.generate_private_key(65537, 2048)),
        "ec-1": SigningKey("ec-1", "ES256", ec.generate_private_key(ec.SECP256R1())),
    }


@dataclass
class Provider:
    """An identity provider's JWKS endpoint: what it publishes, how often it was asked."""

    url: str = ""
    published: list[dict[str, Any]] = field(default_factory=list)
    fetches: int = 0
    down: bool = False

    def publish(self, *keys: SigningKey, extra: tuple[dict[str, Any], ...] = ()) -> None:
        """From now on, the set holds exactly these keys."""
        self.published = [key.jwk() for key in keys] + list(extra)


@pytest.fixture
async def provider(keys: dict[str, SigningKey]) -> Any:
    """The provider on a free loopback port, publishing rsa-1 and ec-1."""
    state = Provider()
    state.publish(keys["rsa-1"], keys["ec-1"])

    async def jwks(_: web.Request) -> web.Response:
        state.fetches += 1
        if state.down:
            return web.Response(status=503, text="down")
        return web.json_response({"keys": state.published})

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", jwks)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.url = str(server.make_url("/.well-known/jwks.json"))
    yield state
    await server.close()


@pytest.fixture
def jwks_settings(make_settings: Callable[..., Settings], provider: Provider) -> Settings:
    """The provider's keys beside the HS256 secret, with its issuer and our audience."""
    result: Settings = make_settings(
        jwt_jwks_url=provider.url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE
    )
    return result


@pytest.fixture
async def client(jwks_settings: Settings, aiohttp_client: Any) -> Client:
    """The app trusting the provider."""
    result: Client = await aiohttp_client(create_app(jwks_settings))
    return result


async def status_with(client: Client, token: str) -> int:
    """The status of a listing made with `token`."""
    response = await client.get("/v1/media", headers={"Authorization": f"Bearer {token}"})
    return response.status


class TestThroughTheApp:
    @pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
    async def test_provider_tokens_verify(
        self, client: Client, keys: dict[str, SigningKey], kid: str
    ) -> None:
        """RS256 and ES256 tokens signed by a published key name their caller."""
        response = await client.get(
            "/v1/media", headers={"Authorization": f"Bearer {keys[kid].sign(sub='carol')}"}
        )
        assert response.status == 200

    async def test_a_known_kid_costs_no_fetch(
        self, client: Client, keys: dict[str, SigningKey], provider: Provider
    ) -> None:
        """Once a key is held, requests signed by it never ask the provider again."""
        assert await status_with(client, keys["rsa-1"].sign()) == 200
        fetched = provider.fetches
        for _ in range(5):
            assert await status_with(client, keys["ec-1"].sign()) == 200
            assert await status_with(client, keys["rsa-1"].sign()) == 200
        assert provider.fetches == fetched

    async def test_rotation_is_picked_up_without_a_restart(
        self, client: Client, keys: dict[str, SigningKey], provider: Provider
    ) -> None:
        """The provider switches to a new kid: the next token signed with it verifies (one
        fetch), and the retired key stops verifying."""
        assert await status_with(client, keys["rsa-1"].sign()) == 200
        fetched = provider.fetches
        provider.publish(keys["rsa-2"])
        assert await status_with(client, keys["rsa-2"].sign()) == 200
        assert provider.fetches == fetched + 1
        assert await status_with(client, keys["rsa-1"].sign()) == 401
        assert provider.fetches == fetched + 1

    async def test_forged_kids_cannot_hammer_the_provider(
        self, client: Client, keys: dict[str, SigningKey], provider: Provider
    ) -> None:
        """Tokens naming kids the provider never had are 401; only the first of them makes
        the service fetch the set again, the rest wait out the cooldown."""
        assert await status_with(client, keys["rsa-1"].sign()) == 200
        fetched = provider.fetches
        forged = [
            SigningKey(f"forged-{i}", "RS256", keys["rsa-2"].private).sign() for i in range(10)
        ]
        statuses = [await status_with(client, token) for token in forged]
        assert statuses == [401] * 10
        assert provider.fetches == fetched + 1

    @pytest.mark.parametrize(
        "claims",
        [
            {"iss": "https://evil.example.com/"},
            {"aud": "another-api"},
            {"iss": None},
            {"aud": None},
        ],
        ids=["wrong-issuer", "wrong-audience", "no-issuer", "no-audience"],
    )
    async def test_tokens_for_someone_else_are_401(
        self, client: Client, keys: dict[str, SigningKey], claims: dict[str, Any]
    ) -> None:
        """A valid signature is not enough: the issuer and audience must be ours."""
        token = keys["rsa-1"].sign(**claims)
        response = await client.get("/v1/media", headers={"Authorization": f"Bearer {token}"})
        assert response.status == 401
        assert (await response.json())["code"] == "unauthorized"

    async def test_the_shared_secret_still_works_beside_the_provider(self, client: Client) -> None:
        """Tokens minted with MEDIASVC_JWT_SECRET (make run's dev token, `mediasvc token`)
        are accepted when they carry the configured issuer and audience, as every token must."""
        ours = mint_token(JWT_SECRET, "dev", issuer=ISSUER, audience=AUDIENCE)
        assert await status_with(client, ours) == 200
        assert await status_with(client, mint_token(JWT_SECRET, "dev")) == 401

    async def test_provider_down_with_an_unknown_kid_is_503(
        self, client: Client, keys: dict[str, SigningKey], provider: Provider
    ) -> None:
        """A new kid while the provider does not answer: 503 busy (the token may be fine);
        keys already held keep working."""
        assert await status_with(client, keys["rsa-1"].sign()) == 200
        provider.down = True
        response = await client.get(
            "/v1/media", headers={"Authorization": f"Bearer {keys['rsa-2'].sign()}"}
        )
        assert response.status == 503
        assert (await response.json())["code"] == "busy"
        assert await status_with(client, keys["rsa-1"].sign()) == 200

    async def test_provider_alone_needs_no_secret(
        self,
        make_settings: Callable[..., Settings],
        provider: Provider,
        keys: dict[str, SigningKey],
        aiohttp_client: Any,
    ) -> None:
        """With only a JWKS URL, provider tokens verify and HS256 tokens are refused."""
        settings = make_settings(
            jwt_secret=None, jwt_jwks_url=provider.url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE
        )
        client: Client = await aiohttp_client(create_app(settings))
        assert await status_with(client, keys["ec-1"].sign()) == 200
        hs256 = mint_token(JWT_SECRET, "dev", issuer=ISSUER, audience=AUDIENCE)
        assert await status_with(client, hs256) == 401


class TestProviderKeys:
    async def test_the_cooldown_spaces_out_unknown_kid_fetches(self, provider: Provider) -> None:
        """After a fetch for an unknown kid, the next one waits until the cooldown has passed
        (a fake clock, so nothing sleeps)."""
        now = [1000.0]
        held = ProviderKeys(provider.url, cooldown_s=COOLDOWN_S, clock=lambda: now[0])
        assert await held.find("nope-1") is None
        assert provider.fetches == 1
        now[0] += COOLDOWN_S - 1
        assert await held.find("nope-2") is None
        assert provider.fetches == 1
        now[0] += 1
        assert await held.find("nope-3") is None
        assert provider.fetches == 2

    async def test_scheduled_refreshes_do_not_start_the_cooldown(
        self, provider: Provider, keys: dict[str, SigningKey]
    ) -> None:
        """A key published just after a background refresh is fetched at once when a token
        names it."""
        held = ProviderKeys(provider.url, cooldown_s=COOLDOWN_S, clock=lambda: 1000.0)
        await held.refresh()
        provider.publish(keys["rsa-2"])
        found = await held.find("rsa-2")
        assert found is not None
        assert found.key_id == "rsa-2"
        assert provider.fetches == 2

    async def test_requests_waiting_for_one_kid_share_one_fetch(
        self, provider: Provider, keys: dict[str, SigningKey]
    ) -> None:
        """Many requests naming the new kid at once make one fetch between them."""
        held = ProviderKeys(provider.url)
        found = await asyncio.gather(*(held.find("ec-1") for _ in range(8)))
        assert [key is not None and key.key_id for key in found] == ["ec-1"] * 8
        assert provider.fetches == 1

    async def test_a_failed_refresh_keeps_the_keys_held(self, provider: Provider) -> None:
        """The provider failing later takes no key away; the failure is reported."""
        held = ProviderKeys(provider.url)
        await held.refresh()
        provider.down = True
        with pytest.raises(KeyFetchFailed, match="cannot fetch"):
            await held.refresh()
        assert held.get("rsa-1") is not None

    async def test_keys_for_other_algorithms_are_left_out(
        self, provider: Provider, keys: dict[str, SigningKey]
    ) -> None:
        """Only RS256 and ES256 keys are held; an HMAC key in the set is ignored."""
        secret = {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"}
        provider.publish(keys["rsa-1"], extra=(secret,))
        held = ProviderKeys(provider.url)
        await held.refresh()
        assert held.get("rsa-1") is not None
        assert held.get("hmac") is None

    async def test_an_unreachable_provider_is_a_fetch_failure(self) -> None:
        """Nobody listening is reported as a failed fetch, not an unexpected error."""
        held = ProviderKeys(f"http://127.0.0.1:{free_port()}/jwks.json", timeout_s=2)
        with pytest.raises(KeyFetchFailed):
            await held.refresh()


class TestVerifier:
    async def test_an_rsa_key_is_never_an_hmac_secret(
        self, provider: Provider, keys: dict[str, SigningKey]
    ) -> None:
        """A token claiming HS256 under the provider's RSA kid, "signed" with that public key
        as the secret (the classic algorithm confusion), is refused."""
        held = ProviderKeys(provider.url)
        await held.refresh()
        verifier = TokenVerifier(secret=None, provider=held, issuer=ISSUER, audience=AUDIENCE)
        public_pem = (
            keys["rsa-1"]
            .private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
        claims = {"sub": "mallory", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60}
        payload = b64(json.dumps(claims).encode())
        signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        with pytest.raises(Unauthorized, match="not an HS256 key"):
            verifier.verify(f"{header}.{payload}.{b64(signature)}")

    def test_no_key_at_all_is_refused_at_construction(self) -> None:
        """A verifier with nothing to verify with cannot be made."""
        with pytest.raises(ValueError, match="JWKS URL"):
            TokenVerifier(secret=None)


JWKS_ENV = {
    "MEDIASVC_DATABASE_URL": "postgresql://x/db",
    "MEDIASVC_URL_SIGNING_SECRET": "k" * 32,
    "MEDIASVC_JWT_JWKS_URL": "https://id.example.com/.well-known/jwks.json",
    "MEDIASVC_JWT_ISSUER": ISSUER,
    "MEDIASVC_JWT_AUDIENCE": AUDIENCE,
}


class TestSettings:
    def test_a_jwks_url_replaces_the_secret(self) -> None:
        """The provider's keys alone are enough to start."""
        settings = Settings.from_env(JWKS_ENV)
        assert settings.jwt_jwks_url == JWKS_ENV["MEDIASVC_JWT_JWKS_URL"]
        assert settings.jwt_secret is None

    @pytest.mark.parametrize("missing", ["MEDIASVC_JWT_ISSUER", "MEDIASVC_JWT_AUDIENCE"])
    def test_a_jwks_url_needs_issuer_and_audience(self, missing: str) -> None:
        """A provider signs for many services: without both checks startup stops."""
        env = {k: v for k, v in JWKS_ENV.items() if k != missing}
        with pytest.raises(ConfigError, match=f"{missing} is required with MEDIASVC_JWT_JWKS_URL"):
            Settings.from_env(env)

    def test_a_jwks_url_must_be_http(self) -> None:
        """A file:// or bare path is refused at startup."""
        with pytest.raises(ConfigError, match="MEDIASVC_JWT_JWKS_URL"):
            Settings.from_env({**JWKS_ENV, "MEDIASVC_JWT_JWKS_URL": "file:///etc/passwd"})

    def test_no_key_of_any_kind_stops_startup(self) -> None:
        """Neither secret, key file nor JWKS URL: one line naming the choices."""
        env = {k: v for k, v in JWKS_ENV.items() if k != "MEDIASVC_JWT_JWKS_URL"}
        with pytest.raises(ConfigError, match=r"MEDIASVC_JWT_SECRET is required.*JWKS_URL"):
            Settings.from_env(env)

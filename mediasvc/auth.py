"""Bearer JWTs: verify incoming tokens, mint tokens for `python -m mediasvc token`.

HS256 with `MEDIASVC_JWT_SECRET`, or RS256 when `MEDIASVC_JWT_PUBLIC_KEY_FILE` names a PEM
public key (the issuer keeps the private key). The subject claim (default `sub`, named by
`MEDIASVC_JWT_SUBJECT_CLAIM`; a number is taken as its decimal string) is the owner id,
`exp` is required, the admin claim (default `mediasvc_admin`, named by
`MEDIASVC_JWT_ADMIN_CLAIM`) set to `true` may act on anyone's media (a product's own `role`
or `admin` claim never does), and the spaces claim (default `spaces`, named by
`MEDIASVC_JWT_SPACES_CLAIM`) lists the spaces whose media the caller may see, and the
manage claim (default `mediasvc_manage`, named by `MEDIASVC_JWT_MANAGE_CLAIM`) the spaces
the caller may empty (`DELETE /v1/spaces/{space}/media`). When
`MEDIASVC_JWT_ISSUER` or `MEDIASVC_JWT_AUDIENCE` is set, the token's `iss` or `aud` must be
present and match it.

Keys: HS256 with the secret, RS256 with the key file, and RS256/ES256 keys an identity
provider publishes at `MEDIASVC_JWT_JWKS_URL`, chosen by the token's `kid` (`jwks`); any
of them alone or together. A token's `alg` only picks among the configured keys, each
pinned to its own algorithm, so an RSA public key is never taken for an HMAC secret.
`verify` never waits on the network: `fetch_key` (awaited by a middleware before the
handler) fetches the provider's keys when a token names a `kid` not yet known.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from mediasvc.claims import DEFAULT_ADMIN_CLAIM, DEFAULT_MANAGE_CLAIM, DEFAULT_SUBJECT_CLAIM
from mediasvc.errors import Busy, Unauthorized
from mediasvc.jwks import ALGORITHMS as PROVIDER_ALGORITHMS
from mediasvc.jwks import KeyFetchFailed, ProviderKeys
from mediasvc.spaces import DEFAULT_CLAIM, MAX_TOKEN_SPACES, SPACE_ID_RULE, is_space_id

if TYPE_CHECKING:
    from jwt.types import Options

    from mediasvc.config import Settings

# Tokens minted by the CLI live this long unless asked otherwise.
DEFAULT_TOKEN_TTL_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling."""

    sub: str
    admin: bool
    # The spaces the token lists: their media are visible to this caller.
    spaces: frozenset[str] = frozenset()
    # The spaces the token says its holder manages: they may empty them.
    manages: frozenset[str] = frozenset()

    def may_act_on(self, owner: str) -> bool:
        """Owners act on their own media; admins on anyone's."""
        return self.admin or self.sub == owner

    def may_manage(self, space: str) -> bool:
        """Admins manage every space; anyone else the spaces their manage claim lists
        (listing a space in the spaces claim, being a member, is not enough)."""
        return self.admin or space in self.manages


class TokenVerifier:
    """Checks signature, expiry and claims of bearer tokens."""

    def __init__(
        self,
        *,
        secret: str | None,
        public_key: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        spaces_claim: str = DEFAULT_CLAIM,
        subject_claim: str = DEFAULT_SUBJECT_CLAIM,
        admin_claim: str = DEFAULT_ADMIN_CLAIM,
        manage_claim: str = DEFAULT_MANAGE_CLAIM,
        provider: ProviderKeys | None = None,
    ) -> None:
        # The service's own keys, by the one algorithm each is for.
        self._own_keys: dict[str, str] = {}
        if secret:
            self._own_keys["HS256"] = secret
        if public_key is not None:
            self._own_keys["RS256"] = public_key
        if not self._own_keys and provider is None:
            raise ValueError("a JWT secret, public key or JWKS URL is required")
        self.provider = provider
        self._issuer, self._audience = issuer, audience
        self._spaces_claim = spaces_claim
        self._subject_claim, self._admin_claim = subject_claim, admin_claim
        self._manage_claim = manage_claim
        # Without an audience of its own, PyJWT refuses every token that carries `aud`;
        # the service then does not check `aud` at all, as it checks no `iss`. PyJWT's own
        # `sub` check (a string) is off: the subject claim is checked below, numbers too.
        self._options: Options = {
            "require": ["exp"],
            "verify_aud": audience is not None,
            "verify_sub": False,
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        """The verifier for the configured key, issuer and audience."""
        return cls(
            secret=settings.jwt_secret,
            public_key=settings.jwt_public_key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            spaces_claim=settings.jwt_spaces_claim,
            subject_claim=settings.jwt_subject_claim,
            admin_claim=settings.jwt_admin_claim,
            manage_claim=settings.jwt_manage_claim,
            provider=None if settings.jwt_jwks_url is None else ProviderKeys(settings.jwt_jwks_url),
        )

    async def fetch_key(self, token: str) -> None:
        """Make sure the provider key `token` names is at hand for `verify`: a `kid` not
        yet known fetches the provider's keys (rate-limited, see `jwks`); `Busy` if that
        fetch fails. Anything else about the token is left for `verify` to refuse."""
        kid = _provider_kid(token) if self.provider is not None else None
        if kid is None or self.provider is None or self.provider.get(kid) is not None:
            return
        try:
            await self.provider.find(kid)
        except KeyFetchFailed:
            raise Busy(
                "The identity provider's keys could not be fetched; try again shortly."
            ) from None

    def _key_for(self, token: str) -> tuple[Any, str]:
        """The key to check `token` with and the one algorithm it must be signed with."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"The token is not valid: {exc}") from None
        alg, kid = header.get("alg"), header.get("kid")
        if self.provider is not None and isinstance(kid, str):
            provided = self.provider.get(kid)
            if provided is not None:
                if provided.algorithm_name != alg:
                    raise Unauthorized(f"The token's key {kid!r} is not an {alg} key.")
                return provided.key, alg
        if isinstance(alg, str) and alg in self._own_keys:
            return self._own_keys[alg], alg
        if self.provider is not None and isinstance(kid, str):
            raise Unauthorized(f"The token's key {kid!r} is not one of the identity provider's.")
        raise Unauthorized(f"The token is signed with {alg!r}, not with a key of this service.")

    def verify(self, token: str) -> Principal:
        """The principal a valid token names; `Unauthorized` for anything else."""
        key, algorithm = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                options=self._options,
                issuer=self._issuer,
                audience=self._audience,
                leeway=30,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The token has expired.") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"The token is not valid: {exc}") from None
        sub = claims.get(self._subject_claim)
        # A product's own tokens often carry a numeric user id; bools are not numbers here.
        if isinstance(sub, int) and not isinstance(sub, bool):
            sub = str(sub)
        if not isinstance(sub, str) or not 0 < len(sub) <= 128:
            raise Unauthorized(
                f"The token's {self._subject_claim!r} claim must be a non-empty string or an "
                "integer (the owner id)."
            )
        return Principal(
            sub=sub,
            admin=claims.get(self._admin_claim) is True,
            spaces=_spaces(claims.get(self._spaces_claim, []), self._spaces_claim),
            manages=_spaces(claims.get(self._manage_claim, []), self._manage_claim),
        )


def _provider_kid(token: str) -> str | None:
    """The `kid` of a token an identity provider may have signed, else None."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        return None
    kid = header.get("kid")
    return kid if isinstance(kid, str) and header.get("alg") in PROVIDER_ALGORITHMS else None


def _spaces(claim: object, name: str) -> frozenset[str]:
    """The space ids a token lists; `Unauthorized` unless the claim is a list of them."""
    # A malformed claim is the product's minting bug: refusing the token says so at once,
    # where ignoring it would show users an empty conversation.
    if not isinstance(claim, list) or not all(isinstance(s, str) for s in claim):
        raise Unauthorized(f"The token's {name!r} claim must be a list of space ids.")
    if len(claim) > MAX_TOKEN_SPACES:
        raise Unauthorized(
            f"The token lists {len(claim)} spaces; at most {MAX_TOKEN_SPACES} are accepted."
        )
    bad = next((s for s in claim if not is_space_id(s)), None)
    if bad is not None:
        raise Unauthorized(f"The token's {name!r} claim lists {bad[:140]!r}: {SPACE_ID_RULE}.")
    return frozenset(claim)


def mint_token(
    secret: str,
    sub: str,
    *,
    admin: bool = False,
    spaces: Sequence[str] = (),
    spaces_claim: str = DEFAULT_CLAIM,
    subject_claim: str = DEFAULT_SUBJECT_CLAIM,
    admin_claim: str = DEFAULT_ADMIN_CLAIM,
    manages: Sequence[str] = (),
    manage_claim: str = DEFAULT_MANAGE_CLAIM,
    ttl_s: int = DEFAULT_TOKEN_TTL_S,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """An HS256 token for `sub`, valid for `ttl_s` seconds, listing `spaces` (and the spaces
    it `manages`) if any, with
    `iss` / `aud` when given (a verifier that checks them needs them)."""
    now = int(time.time())
    claims: dict[str, object] = {subject_claim: sub, "iat": now, "exp": now + ttl_s}
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    if admin:
        claims[admin_claim] = True
    if spaces:
        claims[spaces_claim] = list(spaces)
    if manages:
        claims[manage_claim] = list(manages)
    return jwt.encode(claims, secret, algorithm="HS256")

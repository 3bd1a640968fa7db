"""Bearer JWTs: verify incoming tokens, mint tokens for `python -m mediasvc token`.

HS256 with `MEDIASVC_JWT_SECRET`, or RS256 when `MEDIASVC_JWT_PUBLIC_KEY_FILE` names a PEM
public key (the issuer keeps the private key). `sub` is the owner id, `exp` is required,
`role: "admin"` may act on anyone's media. When `MEDIASVC_JWT_ISSUER` or
`MEDIASVC_JWT_AUDIENCE` is set, the token's `iss` or `aud` must be present and match it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jwt

from mediasvc.errors import Unauthorized

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

    def may_act_on(self, owner: str) -> bool:
        """Owners act on their own media; admins on anyone's."""
        return self.admin or self.sub == owner


class TokenVerifier:
    """Checks signature, expiry and claims of bearer tokens."""

    def __init__(
        self,
        *,
        secret: str | None,
        public_key: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        if public_key is not None:
            self._key, self._algorithms = public_key, ["RS256"]
        elif secret:
            self._key, self._algorithms = secret, ["HS256"]
        else:
            raise ValueError("a JWT secret or public key is required")
        self._issuer, self._audience = issuer, audience
        # Without an audience of its own, PyJWT refuses every token that carries `aud`;
        # the service then does not check `aud` at all, as it checks no `iss`.
        self._options: Options = {
            "require": ["exp", "sub"],
            "verify_aud": audience is not None,
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        """The verifier for the configured key, issuer and audience."""
        return cls(
            secret=settings.jwt_secret,
            public_key=settings.jwt_public_key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )

    def verify(self, token: str) -> Principal:
        """The principal a valid token names; `Unauthorized` for anything else."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                options=self._options,
                issuer=self._issuer,
                audience=self._audience,
                leeway=30,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The token has expired.") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"The token is not valid: {exc}") from None
        sub = claims["sub"]
        if not isinstance(sub, str) or not 0 < len(sub) <= 128:
            raise Unauthorized("The token's subject must be a non-empty string.")
        return Principal(sub=sub, admin=claims.get("role") == "admin")


def mint_token(
    secret: str, sub: str, *, admin: bool = False, ttl_s: int = DEFAULT_TOKEN_TTL_S
) -> str:
    """An HS256 token for `sub`, valid for `ttl_s` seconds."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": sub, "iat": now, "exp": now + ttl_s}
    if admin:
        claims["role"] = "admin"
    return jwt.encode(claims, secret, algorithm="HS256")

"""The TPP side of OAuth for the demo: DPoP keys and proofs, tokens from the sandbox
authorisation server, and the bad credentials the authentication attacks present.

Legitimate clients do what a FAPI 2.0 client does: the authorization-code flow with PKCE
(S256) per PSU, or client_credentials without one, with a DPoP proof at the token
endpoint so the token is bound to the client's key (RFC 9449 §5); then every API call
carries ``Authorization: DPoP <token>`` and a fresh proof (new ``jti``, ``iat`` now,
``htm``, ``htu``, ``ath``). Tokens are fetched once per (client, PSU, scope, kind) and
shared by every request that needs them.

Attackers cannot make the AS sign a bad token, so they build their own on the client
side (a forged signature under the AS's ``kid``, ``alg: none``, HS256 keyed with the
AS's public JWK). The one exception is an expired token: it is minted by the sandbox
AS's non-standard, loopback-only mint hook (``sandbox_mint_endpoint`` in its metadata),
so its signature is genuine and its expiry is the only thing wrong with it.

Nothing here knows a sandbox path: the AS's endpoints come from its discovery document,
the request method and path from the scenario.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import aiohttp
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from finward.auth.dpop import access_token_hash
from finward.auth.jwk import b64url_encode, jwk_thumbprint
from finward.demo.scenario import AuthTemplate, ClientTemplate, substitute
from finward.errors import FinwardError
from finward.sandbox.authserver.clients import SANDBOX_CLIENT_SECRETS, SCOPES

AS_TIMEOUT_S = 10.0
PROOF_ALG = "ES256"  # FAPI 2.0 allows PS256, ES256 and EdDSA; ES256 keys are quick to make
FORGED_LIFETIME_S = 300
EXPIRED_AGO_S = 60  # the expired token's exp, in seconds before now
_METADATA_PATH = "/.well-known/oauth-authorization-server"  # RFC 8414 §3
# Non-standard metadata member of the sandbox AS: its token-minting test hook.
_MINT_ENDPOINT = "sandbox_mint_endpoint"


class CredentialError(FinwardError):
    """The client could not get what it needed to authenticate (the AS refused, ...)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What one request carries to authenticate: extra headers and a query parameter."""

    headers: Mapping[str, str] = field(default_factory=dict)
    query: str | None = None  # e.g. "access_token=...", appended to the request's query


class DPoPKey:
    """A client's proof-of-possession key (ES256), and the proofs it signs."""

    def __init__(self) -> None:
        self._private = ec.generate_private_key(ec.SECP256R1())
        self.jwk: dict[str, Any] = dict(
            ECAlgorithm.to_jwk(self._private.public_key(), as_dict=True)
        )
        self.jkt = jwk_thumbprint(self.jwk)

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        """RFC 9449 §4.2: a new jti and iat now for every request; ath with a token."""
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        headers = {"typ": "dpop+jwt", "jwk": self.jwk}
        return jwt.encode(claims, self._private, algorithm=PROOF_ALG, headers=headers)

    def sign_jws(self, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
        """A JWS with this key and exactly ``header`` (the forger names the AS's kid)."""
        return jwt.encode(dict(claims), self._private, algorithm=PROOF_ALG, headers=dict(header))


@dataclass(frozen=True, slots=True)
class _Issuer:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    mint_endpoint: str | None  # the sandbox AS's test hook, when it has one
    kid: str  # the AS's current signing key, named by forged tokens
    public_jwk: Mapping[str, Any]  # ... and its public JWK, the HS256 attack's "secret"


class TppAgent:
    """Every demo client's credentials: keys, tokens and kept requests, for one run.

    ``public_base_url`` is the URL clients use to reach finward: DPoP proofs name it in
    ``htu``, whatever address the request is actually sent to.
    """

    def __init__(
        self,
        issuer: str,
        clients: Mapping[str, ClientTemplate],
        public_base_url: str,
        audience: str,
    ) -> None:
        self.issuer_url = issuer
        self.clients = clients
        self.public_base_url = public_base_url.rstrip("/")
        self.audience = audience
        self._keys: dict[str, DPoPKey] = {}
        self._tokens: dict[tuple[str, ...], asyncio.Task[str]] = {}
        self._kept: dict[str, Credentials] = {}
        self._issuer: asyncio.Task[_Issuer] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def key(self, name: str) -> DPoPKey:
        """The DPoP key called ``name`` (a client id, or any name for another party)."""
        if name not in self._keys:
            self._keys[name] = DPoPKey()
        return self._keys[name]

    async def credentials(
        self, auth: AuthTemplate, variables: Mapping[str, str], method: str, path: str
    ) -> Credentials:
        """The headers (and query parameter) one request of a step carries.

        ``path`` is the request target as sent; its query is not part of ``htu``.
        """
        if auth.replay is not None:
            kept = self._kept.get(auth.replay)
            if kept is None:
                raise CredentialError(f"nothing was kept as {auth.replay!r} (did that step fail?)")
            return kept
        assert auth.client is not None  # the scenario parser guarantees one of the two
        psu = substitute(auth.psu, variables) if auth.psu is not None else None
        scope = substitute(auth.scope, variables) if auth.scope is not None else None
        token = await self._token(auth, auth.client, psu, scope)
        headers: dict[str, str] = {}
        query = None
        if auth.place == "query":
            query = urlencode({"access_token": token})
        else:
            headers["Authorization"] = f"{auth.scheme} {token}"
        if auth.proof == "fresh":
            htu = self.public_base_url + path.split("?", 1)[0]
            signer = self.key(auth.proof_key or auth.client)
            headers["DPoP"] = signer.proof(method, htu, token)
        found = Credentials(headers, query)
        if auth.keep is not None:
            self._kept[auth.keep] = found
        return found

    # -- tokens ---------------------------------------------------------------------

    async def _token(
        self, auth: AuthTemplate, client: str, psu: str | None, scope: str | None
    ) -> str:
        key = (auth.origin, auth.bind, client, psu or "", scope or "")
        task = self._tokens.get(key)
        if task is None or _failed(task):
            # One fetch per key, however many workers ask at once; a failure is retried.
            task = asyncio.ensure_future(self._new_token(auth, client, psu, scope))
            self._tokens[key] = task
        return await asyncio.shield(task)

    async def _new_token(
        self, auth: AuthTemplate, client_id: str, psu: str | None, scope: str | None
    ) -> str:
        client = self.clients[client_id]
        bound = self.key(client_id) if auth.bind == "dpop" else None
        if auth.origin == "issued":
            if psu is None:
                return await self._client_credentials(client, scope, bound)
            return await self._authorization_code(client, psu, scope, bound)
        if auth.origin == "expired":
            return await self._minted(client, psu, scope, bound, exp_in=-EXPIRED_AGO_S)
        return await self._attacker_token(auth.origin, client, psu, scope, bound)

    async def _authorization_code(
        self, client: ClientTemplate, psu: str, scope: str | None, bound: DPoPKey | None
    ) -> str:
        """RFC 6749 §4.1 with PKCE S256 (RFC 7636); the sandbox's `psu` approves at once."""
        issuer = await self._discover()
        verifier = secrets.token_urlsafe(48)
        challenge = b64url_encode(hashlib.sha256(verifier.encode("ascii")).digest())
        state = secrets.token_urlsafe(16)
        params = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uri,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "psu": psu,
        }
        if scope is not None:
            params["scope"] = scope
        session = self._http()
        async with session.get(
            issuer.authorization_endpoint, params=params, allow_redirects=False
        ) as response:
            location = response.headers.get("Location", "")
            body = await response.read()
        if response.status != 302 or not location.startswith(client.redirect_uri):
            raise CredentialError(
                f"{client.client_id}: /authorize for {psu} answered {response.status} "
                f"{_oauth_error(body)}"
            )
        answer = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        if "code" not in answer:
            raise CredentialError(
                f"{client.client_id}: authorization for {psu} refused: {answer.get('error')}"
            )
        # RFC 6749 §10.12 (CSRF) and RFC 9207 (mix-up): our state, from our AS.
        if answer.get("state") != state or answer.get("iss") != issuer.issuer:
            raise CredentialError(f"{client.client_id}: the authorization response is not ours")
        form = {
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": client.redirect_uri,
            "code_verifier": verifier,
        }
        return await self._token_request(issuer, client, form, bound)

    async def _client_credentials(
        self, client: ClientTemplate, scope: str | None, bound: DPoPKey | None
    ) -> str:
        issuer = await self._discover()
        form = {"grant_type": "client_credentials"}
        if scope is not None:
            form["scope"] = scope
        return await self._token_request(issuer, client, form, bound)

    async def _token_request(
        self,
        issuer: _Issuer,
        client: ClientTemplate,
        form: dict[str, str],
        bound: DPoPKey | None,
    ) -> str:
        headers = {"Authorization": _basic(client.client_id, _secret(client))}
        if bound is not None:  # RFC 9449 §5: no ath at the token endpoint
            headers["DPoP"] = bound.proof("POST", issuer.token_endpoint)
        async with self._http().post(issuer.token_endpoint, data=form, headers=headers) as response:
            body = await response.read()
        if response.status != 200:
            raise CredentialError(
                f"{client.client_id}: the token endpoint answered {response.status} "
                f"{_oauth_error(body)}"
            )
        token = _json(body).get("access_token")
        if not isinstance(token, str):
            raise CredentialError(f"{client.client_id}: the token response has no access_token")
        return token

    async def _minted(
        self,
        client: ClientTemplate,
        psu: str | None,
        scope: str | None,
        bound: DPoPKey | None,
        *,
        exp_in: int,
    ) -> str:
        """A genuine AS signature over claims no grant would issue (sandbox-only hook)."""
        mint = (await self._discover()).mint_endpoint
        if mint is None:
            raise CredentialError("the AS offers no mint hook (is it in sandbox mode?)")
        request: dict[str, Any] = {"client_id": client.client_id, "exp_in": exp_in}
        if psu is not None:
            request["sub"] = psu
        if scope is not None:
            request["scope"] = scope
        if bound is not None:
            request["cnf"] = {"jkt": bound.jkt}
        async with self._http().post(mint, json=request) as response:
            body = await response.read()
        if response.status != 200:
            raise CredentialError(
                f"the AS's mint hook answered {response.status} {_oauth_error(body)}"
            )
        token = _json(body).get("access_token")
        if not isinstance(token, str):
            raise CredentialError("the AS's mint hook returned no access_token")
        return token

    async def _attacker_token(
        self,
        kind: str,
        client: ClientTemplate,
        psu: str | None,
        scope: str | None,
        bound: DPoPKey | None,
    ) -> str:
        """Well-formed claims the AS would issue; only the signature is the attacker's."""
        issuer = await self._discover()
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer.issuer,
            "sub": psu or client.client_id,
            "aud": self.audience,
            "exp": now + FORGED_LIFETIME_S,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(24),
            "client_id": client.client_id,
            "scope": scope or " ".join(SCOPES),  # an attacker asks for everything
        }
        if bound is not None:
            claims["cnf"] = {"jkt": bound.jkt}
        header: dict[str, Any] = {"typ": "at+jwt", "kid": issuer.kid}
        if kind == "forged":  # RFC 8725 §3.1 would catch nothing here: only the key is wrong
            return self.key("forger").sign_jws({**header, "alg": PROOF_ALG}, claims)
        if kind == "alg-none":  # RFC 8725 §2.1: an unsecured JWS
            return _compact({**header, "alg": "none"}, claims, b"")
        if kind == "hs256-jwk":  # RFC 8725 §2.1: the public key used as an HMAC secret
            secret = orjson.dumps(dict(issuer.public_jwk), option=orjson.OPT_SORT_KEYS)
            signing_input = _signing_input({**header, "alg": "HS256"}, claims)
            mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
            return signing_input.decode("ascii") + "." + b64url_encode(mac)
        raise CredentialError(f"unknown token kind {kind!r}")

    # -- the authorisation server -----------------------------------------------------

    async def _discover(self) -> _Issuer:
        if self._issuer is None or _failed(self._issuer):
            self._issuer = asyncio.ensure_future(self._fetch_metadata())
        return await asyncio.shield(self._issuer)

    async def _fetch_metadata(self) -> _Issuer:
        session = self._http()
        async with session.get(self.issuer_url + _METADATA_PATH) as response:
            metadata = _json(await response.read())
        if metadata.get("issuer") != self.issuer_url:  # RFC 8414 §3.3
            raise CredentialError("the AS's metadata names another issuer")
        names = ("jwks_uri", "authorization_endpoint", "token_endpoint")
        endpoints = {name: metadata.get(name) for name in names}
        if not all(isinstance(url, str) for url in endpoints.values()):
            raise CredentialError(f"the AS's metadata lacks one of {', '.join(names)}")
        async with session.get(str(endpoints["jwks_uri"])) as response:
            jwks = _json(await response.read())
        keys = [k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("kid")]
        if not keys:
            raise CredentialError("the AS publishes no signing key")
        current = next((k for k in keys if k.get("alg") == PROOF_ALG), keys[0])
        return _Issuer(
            issuer=self.issuer_url,
            authorization_endpoint=str(endpoints["authorization_endpoint"]),
            token_endpoint=str(endpoints["token_endpoint"]),
            mint_endpoint=mint if isinstance(mint := metadata.get(_MINT_ENDPOINT), str) else None,
            kid=str(current["kid"]),
            public_jwk=current,
        )

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=AS_TIMEOUT_S),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session


def _failed(task: asyncio.Task[Any]) -> bool:
    """A finished fetch that did not produce a value: the next caller tries again."""
    return task.done() and (task.cancelled() or task.exception() is not None)


def _secret(client: ClientTemplate) -> str:
    secret = client.secret or SANDBOX_CLIENT_SECRETS.get(client.client_id)
    if secret is None:
        raise CredentialError(f"{client.client_id}: no secret (give clients.*.secret)")
    return secret


def _basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: each part form-urlencoded, then RFC 7617 Basic."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _json(body: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _oauth_error(body: bytes) -> str:
    parsed = _json(body)
    return f"{parsed.get('error', '')}: {parsed.get('error_description', '')}".strip(": ")


def _signing_input(header: Mapping[str, Any], claims: Mapping[str, Any]) -> bytes:
    parts = (b64url_encode(orjson.dumps(dict(header))), b64url_encode(orjson.dumps(dict(claims))))
    return ".".join(parts).encode("ascii")


def _compact(header: Mapping[str, Any], claims: Mapping[str, Any], signature: bytes) -> str:
    return _signing_input(header, claims).decode("ascii") + "." + b64url_encode(signature)

"""Fetch an issuer's JSON Web Key Set over HTTP: ``KeyProvider`` (I/O for ``finward.auth.jwk``).

One provider per trusted issuer. The JWKS location is configured, never taken from a token
(``jku``/``x5u`` are ignored by the verifier, RFC 8725 §3.10): either a ``jwks_uri`` or the
issuer itself, whose metadata is discovered (OpenID Connect Discovery 1.0 §4, then RFC 8414
§3) and must name exactly the configured issuer (RFC 8414 §3.3).

Keys are cached and refreshed lazily, on demand: no timer, thread or background task. A
token with an unknown ``kid`` may trigger one refetch, single-flight (concurrent callers
share it) and rate-limited (``MIN_REFETCH_INTERVAL_S``), so random ``kid``s cannot flood
the authorization server. When a fetch fails, the previous keys keep being served and the
failure is reported through ``on_failure``; with no keys at all, ``JwksUnavailableError``
(reason ``jwks_unavailable``, 503) is raised.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from finward.auth.jwk import MAX_JWKS_BYTES, JwksError, KeySet, parse_jwks_json
from finward.clock import Clock
from finward.decision import DenialError

# How long fetched keys are used before the next request refreshes them. ASes rotate with
# an overlap of hours; five minutes bounds how long a removed (compromised) key survives.
DEFAULT_MAX_AGE_S = 300.0
# At most one refetch for an unknown `kid` per this interval: a storm of tokens with random
# kids costs the AS one request per interval, whatever the request rate.
MIN_REFETCH_INTERVAL_S = 30.0
# After a failed fetch, wait this long before trying again (stale keys are served meanwhile,
# or requests fail fast with jwks_unavailable): a down AS is not hammered by every request.
RETRY_AFTER_FAILURE_S = 5.0
# Whole request (connect, headers, body). Control-plane calls on the request path of the
# first token after a rotation: seconds, not aiohttp's default five minutes.
DEFAULT_TIMEOUT_S = 5.0
# Metadata documents are a few KiB; the cap bounds the JSON parse like MAX_JWKS_BYTES.
MAX_METADATA_BYTES = 64 * 1024
OPENID_CONFIGURATION = "/.well-known/openid-configuration"
OAUTH_AUTHORIZATION_SERVER = "/.well-known/oauth-authorization-server"
_LOOPBACK_NAMES = frozenset({"localhost"})


class JwksUnavailableError(DenialError):
    """No usable keys for the issuer: the JWKS could not be fetched and nothing is cached."""

    reason = "jwks_unavailable"


@dataclass(frozen=True, slots=True)
class FetchFailure:
    """What ``on_failure`` receives: for an event, never containing keys or tokens."""

    source: str  # the configured jwks_uri or issuer
    detail: str
    serving_cached: bool  # True: previous keys are still in use


class _FetchError(Exception):
    pass


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, what: str, *, allow_insecure_loopback: bool) -> str:
    """``url`` if it is https (or http to a loopback host when allowed); else ``ValueError``."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if allow_insecure_loopback and parts.scheme == "http" and is_loopback_host(parts.hostname):
        return url
    raise ValueError(f"{what} must be an https URL (http only for loopback, when allowed)")


def discovery_urls(issuer: str) -> tuple[str, str]:
    """OIDC Discovery §4 appends the well-known path; RFC 8414 §3.1 inserts it before the
    issuer's path. Both are the same for an issuer without a path."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin + path + OPENID_CONFIGURATION, origin + OAUTH_AUTHORIZATION_SERVER + path


def new_session(timeout_s: float = DEFAULT_TIMEOUT_S) -> aiohttp.ClientSession:
    """A client session fit for control-plane calls: verified TLS (system trust store), no
    cookies, no proxy settings taken from the environment, bounded timeouts. The caller
    closes it."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(), limit=8),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        trust_env=False,
    )


async def fetch_capped(
    session: aiohttp.ClientSession,
    url: str,
    *,
    limit: int,
    timeout_s: float,
    accept: str,
) -> bytes:
    """GET ``url``: 200 only, redirects not followed, body refused beyond ``limit`` bytes."""
    headers = {"Accept": accept, "Accept-Encoding": "identity"}
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with session.get(
            url, headers=headers, allow_redirects=False, timeout=timeout
        ) as response:
            if response.status != 200:
                raise _FetchError(f"HTTP status {response.status}")
            if response.content_length is not None and response.content_length > limit:
                raise _FetchError(f"the document exceeds {limit} bytes")
            body = bytearray()
            async for chunk in response.content.iter_chunked(16 * 1024):
                body += chunk
                if len(body) > limit:
                    raise _FetchError(f"the document exceeds {limit} bytes")
            return bytes(body)
    except TimeoutError:
        raise _FetchError("timed out") from None
    except aiohttp.ClientError as exc:
        raise _FetchError(f"request failed ({type(exc).__name__})") from None


class KeyProvider:
    """The verification keys of one issuer, fetched over HTTP and cached.

    Give exactly one of ``jwks_uri`` and ``issuer`` (discovery). ``allow_insecure_loopback``
    permits ``http://`` to loopback hosts (the sandbox); everything else must be https,
    verified by the session's TLS settings (see ``new_session``). The caller owns
    ``session``. Not thread-safe: one event loop.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        clock: Clock,
        jwks_uri: str | None = None,
        issuer: str | None = None,
        allow_insecure_loopback: bool = False,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        min_refetch_interval_s: float = MIN_REFETCH_INTERVAL_S,
        retry_after_failure_s: float = RETRY_AFTER_FAILURE_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        on_failure: Callable[[FetchFailure], None] | None = None,
    ) -> None:
        if (jwks_uri is None) == (issuer is None):
            raise ValueError("give exactly one of jwks_uri and issuer")
        if max_age_s <= 0 or min_refetch_interval_s < 0 or retry_after_failure_s < 0:
            raise ValueError("max_age_s must be positive and the intervals not negative")
        if not 0 < timeout_s <= 60:
            raise ValueError("timeout_s must be within (0, 60]")
        self._allow_loopback = allow_insecure_loopback
        if jwks_uri is not None:
            check_url(jwks_uri, "jwks_uri", allow_insecure_loopback=allow_insecure_loopback)
        if issuer is not None:
            check_url(issuer, "issuer", allow_insecure_loopback=allow_insecure_loopback)
        self._session = session
        self._clock = clock
        self._issuer = issuer
        self._jwks_uri = jwks_uri  # discovered lazily when only the issuer is configured
        self._source: str = jwks_uri if jwks_uri is not None else str(issuer)
        self._max_age_s = max_age_s
        self._min_refetch_s = min_refetch_interval_s
        self._retry_s = retry_after_failure_s
        self._timeout_s = timeout_s
        self._on_failure = on_failure
        self._keys: KeySet | None = None
        self._fetched_at = 0.0  # monotonic time of the last successful fetch
        self._attempted_at: float | None = None  # monotonic time of the last fetch attempt
        self._failed_at: float | None = None  # monotonic time of the last failed attempt
        self._last_error = "no fetch attempted"
        self._generation = 0  # bumped after every fetch attempt, successful or not
        self._lock = asyncio.Lock()

    @property
    def source(self) -> str:
        return self._source

    @property
    def jwks_uri(self) -> str | None:
        """The configured or discovered JWKS location (None before discovery)."""
        return self._jwks_uri

    @property
    def cached(self) -> KeySet | None:
        return self._keys

    def fresh_keys(self) -> KeySet | None:
        """The cached keys if younger than ``max_age_s`` (what ``get_keys`` would return
        without fetching), else None."""
        keys = self._keys
        if keys is not None and self._clock.monotonic() - self._fetched_at < self._max_age_s:
            return keys
        return None

    async def get_keys(self) -> KeySet:
        """The issuer's keys: cached, refreshed once older than ``max_age_s``."""
        keys = self._keys
        if keys is not None and self._clock.monotonic() - self._fetched_at < self._max_age_s:
            return keys
        generation = self._generation
        async with self._lock:
            if self._generation == generation and not self._backing_off():
                await self._fetch_locked()
        return self._current()

    async def keys_for_unknown_kid(self, kid: str) -> KeySet:
        """Refetch once because a token names a ``kid`` the cached set lacks.

        Single-flight: concurrent callers share one fetch. Rate-limited: at most one
        refetch per ``min_refetch_interval_s``; within it the cached keys are returned and
        the token's verification fails with ``token_key_unknown``. ``kid`` is only compared.
        """
        keys = self._keys
        if keys is None:
            return await self.get_keys()
        if keys.has_kid(kid):
            return keys
        generation = self._generation
        async with self._lock:
            if self._generation == generation and not self._rate_limited():
                await self._fetch_locked()
        return self._current()

    def _backing_off(self) -> bool:
        failed = self._failed_at
        return failed is not None and self._clock.monotonic() - failed < self._retry_s

    def _rate_limited(self) -> bool:
        attempted = self._attempted_at
        recent = attempted is not None and self._clock.monotonic() - attempted < self._min_refetch_s
        return recent or self._backing_off()

    def _current(self) -> KeySet:
        if self._keys is None:
            raise JwksUnavailableError(f"no keys for the issuer: {self._last_error}")
        return self._keys

    async def _fetch_locked(self) -> None:
        self._attempted_at = self._clock.monotonic()
        try:
            keys = await self._fetch()
        except _FetchError as exc:
            self._failed(str(exc))
        else:
            self._keys = keys
            self._fetched_at = self._clock.monotonic()
            self._failed_at = None
            self._last_error = ""
        # Not in `finally`: when the fetching caller is cancelled, the next waiter fetches.
        self._generation += 1

    def _failed(self, detail: str) -> None:
        self._failed_at = self._clock.monotonic()
        self._last_error = detail
        if self._on_failure is not None:
            failure = FetchFailure(self._source, detail, serving_cached=self._keys is not None)
            self._on_failure(failure)

    async def _fetch(self) -> KeySet:
        uri = self._jwks_uri if self._jwks_uri is not None else await self._discover()
        raw = await fetch_capped(
            self._session,
            uri,
            limit=MAX_JWKS_BYTES,
            timeout_s=self._timeout_s,
            accept="application/jwk-set+json, application/json",
        )
        try:
            keys = parse_jwks_json(raw)
        except JwksError as exc:
            raise _FetchError(f"the JWKS is unusable: {exc}") from None
        if not keys.keys:
            # Replacing good keys with an empty set would refuse every token: keep the old.
            raise _FetchError("the JWKS has no usable signing keys")
        return keys

    async def _discover(self) -> str:
        issuer = str(self._issuer)
        openid, oauth = discovery_urls(issuer)
        try:
            raw = await self._metadata(openid)
        except _FetchError:
            raw = await self._metadata(oauth)
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError):
            raise _FetchError("the metadata is not valid JSON") from None
        if not isinstance(document, dict):
            raise _FetchError("the metadata is not a JSON object")
        # RFC 8414 §3.3 / OIDC Discovery §4.3: exactly the configured issuer, or nothing.
        if document.get("issuer") != issuer:
            raise _FetchError("the metadata names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise _FetchError("the metadata has no jwks_uri")
        try:
            check_url(jwks_uri, "jwks_uri", allow_insecure_loopback=self._allow_loopback)
        except ValueError as exc:
            raise _FetchError(f"the discovered {exc}") from None
        self._jwks_uri = jwks_uri
        return jwks_uri

    async def _metadata(self, url: str) -> bytes:
        return await fetch_capped(
            self._session,
            url,
            limit=MAX_METADATA_BYTES,
            timeout_s=self._timeout_s,
            accept="application/json",
        )

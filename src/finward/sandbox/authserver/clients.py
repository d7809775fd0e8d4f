"""Clients registered at the sandbox AS: TPPs (PSD2 roles, eIDAS organisation ids) and the
resource server that introspects tokens.

In memory and configurable by the caller. The secrets below are sandbox fixtures, public
by design; production clients authenticate with certificates or signed JWTs (FAPI 2.0
§5.3.1.4 forbids client secrets), which is why ``tls_client_auth`` is modelled here too.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import InitVar, dataclass, field
from types import MappingProxyType

# The scopes of the sandbox bank's APIs (Berlin Group AIS, PIS, PIIS; UK OB alike).
SCOPES: tuple[str, ...] = ("accounts", "payments", "fundsconfirmation")
# RFC 6749 §2.3.1 and RFC 8705 §2.1: how a client proves who it is at the token endpoint.
CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 - a method name
TLS_CLIENT_AUTH = "tls_client_auth"
AUTH_METHODS: tuple[str, ...] = (CLIENT_SECRET_BASIC, TLS_CLIENT_AUTH)
GRANT_TYPES: tuple[str, ...] = ("client_credentials", "authorization_code")

DEFAULT_GATEWAY_CLIENT_ID = "finward-gateway"
DEFAULT_GATEWAY_SECRET = "finward-gateway-sandbox-secret"  # noqa: S105 - sandbox fixture
# The secrets of the default TPPs: public sandbox fixtures, for the demo and the tests.
SANDBOX_CLIENT_SECRETS: Mapping[str, str] = MappingProxyType(
    {
        "tpp-acme-ais": "acme-ais-sandbox-secret",
        "tpp-globex-pis": "globex-pis-sandbox-secret",
        "tpp-initech": "initech-sandbox-secret",
        "tpp-scraper": "scraper-sandbox-secret",
    }
)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class ClientRegistration:
    """One registered client. Only a digest of the secret is kept, and never printed.

    ``organisation_id`` is the eIDAS organizationIdentifier (ETSI TS 119 495 §5.2.1,
    ``PSDDE-BAFIN-123456``) a ``tls_client_auth`` client's certificate must carry.
    ``can_introspect`` marks resource servers allowed to call ``/introspect``.
    """

    client_id: str
    name: str
    secret: InitVar[str | None] = None
    scopes: frozenset[str] = frozenset()
    redirect_uris: tuple[str, ...] = ()
    organisation_id: str | None = None
    roles: frozenset[str] = frozenset()  # PSD2 roles: PSP_AI, PSP_PI, PSP_IC, PSP_AS
    auth_methods: frozenset[str] = frozenset({CLIENT_SECRET_BASIC})
    grant_types: frozenset[str] = frozenset(GRANT_TYPES)
    can_introspect: bool = False
    _secret_digest: bytes | None = field(init=False, repr=False, compare=False)

    def __post_init__(self, secret: str | None) -> None:
        if not self.client_id or not self.client_id.isprintable():
            raise ValueError("client_id must be a non-empty printable string")
        for name in ("scopes", "roles", "auth_methods", "grant_types"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        object.__setattr__(self, "redirect_uris", tuple(self.redirect_uris))
        unknown = self.auth_methods - set(AUTH_METHODS)
        if unknown:
            raise ValueError(f"unsupported client auth methods: {sorted(unknown)}")
        if CLIENT_SECRET_BASIC in self.auth_methods and not secret:
            raise ValueError("client_secret_basic needs a secret")
        if TLS_CLIENT_AUTH in self.auth_methods and not self.organisation_id:
            raise ValueError("tls_client_auth needs an organisation_id")
        unknown_grants = self.grant_types - set(GRANT_TYPES)
        if unknown_grants:
            raise ValueError(f"unsupported grant types: {sorted(unknown_grants)}")
        # The plain secret is not kept beyond construction.
        object.__setattr__(self, "_secret_digest", _digest(secret) if secret else None)

    def check_secret(self, secret: str) -> bool:
        """Constant-time comparison of digests: no timing leak of how much matched."""
        if self._secret_digest is None or CLIENT_SECRET_BASIC not in self.auth_methods:
            return False
        return hmac.compare_digest(self._secret_digest, _digest(secret))

    def allows_scopes(self, scopes: Iterable[str]) -> bool:
        return self.scopes.issuperset(scopes)


class ClientRegistry:
    """Registered clients by ``client_id``."""

    def __init__(self, clients: Iterable[ClientRegistration] = ()) -> None:
        self._clients: dict[str, ClientRegistration] = {}
        for client in clients:
            self.register(client)

    def register(self, client: ClientRegistration) -> None:
        if client.client_id in self._clients:
            raise ValueError(f"client {client.client_id!r} is already registered")
        self._clients[client.client_id] = client

    def get(self, client_id: str) -> ClientRegistration | None:
        return self._clients.get(client_id)

    def authenticate_secret(self, client_id: str, secret: str) -> ClientRegistration | None:
        client = self._clients.get(client_id)
        if client is None:
            # Same work either way, so response time does not reveal which ids exist.
            hmac.compare_digest(_digest(secret), _digest(client_id))
            return None
        return client if client.check_secret(secret) else None

    def __iter__(self) -> Iterator[ClientRegistration]:
        return iter(self._clients.values())

    def __len__(self) -> int:
        return len(self._clients)


def default_clients(
    gateway_secret: str = DEFAULT_GATEWAY_SECRET,
    gateway_client_id: str = DEFAULT_GATEWAY_CLIENT_ID,
) -> ClientRegistry:
    """Four TPPs and the gateway. Organisation ids match ``tests/auth/certs.py`` QWACs.

    ``tpp-scraper`` is a licensed account-information TPP that polls far too eagerly: the
    demo's rate limits are there for it. It has no certificate, so no organisation id.
    """
    return ClientRegistry(
        [
            ClientRegistration(
                client_id="tpp-acme-ais",
                name="Acme Accounts GmbH",
                secret=SANDBOX_CLIENT_SECRETS["tpp-acme-ais"],
                scopes=frozenset({"accounts"}),
                redirect_uris=("https://acme.example/callback",),
                organisation_id="PSDDE-BAFIN-123456",
                roles=frozenset({"PSP_AI"}),
                auth_methods=frozenset({CLIENT_SECRET_BASIC, TLS_CLIENT_AUTH}),
            ),
            ClientRegistration(
                client_id="tpp-globex-pis",
                name="Globex Payments SE",
                secret=SANDBOX_CLIENT_SECRETS["tpp-globex-pis"],
                scopes=frozenset({"payments", "fundsconfirmation"}),
                redirect_uris=("https://globex.example/cb",),
                organisation_id="PSDDE-BAFIN-654321",
                roles=frozenset({"PSP_PI", "PSP_IC"}),
                auth_methods=frozenset({CLIENT_SECRET_BASIC, TLS_CLIENT_AUTH}),
            ),
            ClientRegistration(
                client_id="tpp-initech",
                name="Initech Open Banking AG",
                secret=SANDBOX_CLIENT_SECRETS["tpp-initech"],
                scopes=frozenset(SCOPES),
                redirect_uris=("https://initech.example/oauth/callback", "http://127.0.0.1/cb"),
                organisation_id="PSDDE-BAFIN-777777",
                roles=frozenset({"PSP_AI", "PSP_PI", "PSP_IC"}),
                auth_methods=frozenset({CLIENT_SECRET_BASIC, TLS_CLIENT_AUTH}),
            ),
            ClientRegistration(
                client_id="tpp-scraper",
                name="Hoover Aggregation Ltd",
                secret=SANDBOX_CLIENT_SECRETS["tpp-scraper"],
                scopes=frozenset({"accounts"}),
                redirect_uris=("https://scraper.example/cb",),
                roles=frozenset({"PSP_AI"}),
            ),
            ClientRegistration(
                client_id=gateway_client_id,
                name="finward gateway (resource server)",
                secret=gateway_secret,
                grant_types=frozenset(),
                can_introspect=True,
            ),
        ]
    )

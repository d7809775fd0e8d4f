"""A test authorization server for the sandbox: FAPI 2.0-style tokens for the demo and tests.

finward is a resource server; this AS issues what it validates: RFC 9068 JWT access
tokens (``typ: at+jwt``) signed with rotating ES256/PS256/EdDSA keys, certificate-bound
(RFC 8705) and DPoP-bound (RFC 9449) tokens, opaque tokens with RFC 7662 introspection and
RFC 7009 revocation, and an auto-approving authorization-code flow with PKCE for a
simulated PSU. It runs fully offline and trusts its caller (see ``grants`` for the
``X-Client-Cert`` header): it is a sandbox, never a production AS.

Import the submodules directly (``keys``, ``tokens``, ``clients``, ``state``, ``app``,
``server``); this package module imports nothing, so importing it stays cheap.
"""

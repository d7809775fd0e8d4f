"""Access-token authentication, sans-IO: JWKS parsing, bearer extraction, JWT verification.

Import the submodules directly (``finward.auth.tokens``, ``finward.auth.jwk``,
``finward.auth.token_cache``); this package module imports nothing, so importing
``finward.auth`` stays cheap and does not pull in ``cryptography``.
"""

"""Stable reason codes: the public vocabulary of every refusal.

Reason codes are public API. They appear in problem+json bodies, logs, metrics
and audit events. Never reword or renumber one; add new ones instead. The
catalogue in docs/reason-codes.md is kept in sync by tests/test_reason_codes.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    status: int
    title: str


def _catalogue(*reasons: Reason) -> dict[str, Reason]:
    return {r.code: r for r in reasons}


REASONS: dict[str, Reason] = _catalogue(
    # Routing (positive security model: unknown endpoints never reach the upstream).
    Reason("route_not_found", 404, "No API operation matches this path"),
    Reason("method_not_allowed", 405, "The operation does not allow this method"),
    Reason("path_not_canonical", 400, "The request path is not in canonical form"),
    # Malformed HTTP and request smuggling (RFC 9112 §6.3, §5.1, §5.2).
    Reason("malformed_request", 400, "The request is not valid HTTP/1.1"),
    Reason("ambiguous_message_length", 400, "Content-Length and Transfer-Encoding together"),
    Reason("invalid_content_length", 400, "Content-Length is invalid or repeated"),
    Reason("invalid_transfer_encoding", 400, "Transfer-Encoding is invalid or not supported"),
    Reason("invalid_chunk", 400, "The chunked body is malformed"),
    Reason("obsolete_line_folding", 400, "Header line folding (obs-fold) is not allowed"),
    Reason("invalid_header", 400, "A header name or value is malformed"),
    Reason("missing_host", 400, "HTTP/1.1 requests need exactly one Host header"),
    Reason("uri_too_long", 414, "The request target is too long"),
    Reason("headers_too_large", 431, "The request headers are too large"),
    Reason("body_too_large", 413, "The request body is too large"),
    Reason("request_timeout", 408, "The client was too slow sending the request"),
    Reason("expectation_failed", 417, "Only 'Expect: 100-continue' is supported"),
    Reason("client_cert_invalid", 400, "The forwarded client certificate is invalid"),
    Reason("too_many_connections", 503, "The gateway has too many open connections"),
    Reason("too_many_connections_from_ip", 429, "Too many open connections from this address"),
    # Upstream.
    Reason("upstream_unavailable", 502, "The upstream API could not be reached"),
    Reason("upstream_timeout", 504, "The upstream API did not answer in time"),
    Reason("upstream_bad_response", 502, "The upstream API sent an invalid response"),
    # Gateway.
    Reason("internal_error", 503, "The gateway could not evaluate its policies"),
    # Logged only: the client went away before the response (nginx's 499).
    Reason("client_closed", 499, "The client closed the connection before the response"),
    # Admin listener.
    Reason("admin_unauthorized", 401, "Admin authentication is required"),
    Reason("admin_not_found", 404, "No such admin endpoint"),
    Reason("admin_invalid_request", 400, "The admin request is invalid"),
    Reason("admin_not_configured", 409, "The gateway has no state store for this action"),
    # Sender-constrained tokens and TPP identity (RFC 9449, RFC 8705, PSD2 RTS Art. 34).
    Reason("dpop_proof_missing", 401, "A DPoP proof is required"),
    Reason("dpop_proof_invalid", 401, "The DPoP proof is invalid"),
    Reason("dpop_proof_replayed", 401, "The DPoP proof was already used"),
    Reason("dpop_nonce_required", 401, "The DPoP proof must carry a fresh server nonce"),
    Reason("dpop_binding_mismatch", 401, "The DPoP key is not the one the token is bound to"),
    Reason("mtls_binding_mismatch", 401, "The client certificate is not the one the token is for"),
    Reason("client_cert_required", 401, "A TLS client certificate is required"),
    Reason("token_binding_missing", 401, "A sender-constrained access token is required"),
    Reason("tpp_role_invalid", 403, "The TPP certificate lacks the PSD2 role for this service"),
    Reason("tpp_certificate_invalid", 403, "The TPP certificate is not a valid PSD2 certificate"),
    # Authentication: JWT access tokens (RFC 6750, RFC 9068, RFC 8725, FAPI 2.0 §5.3.4, §5.4).
    Reason("token_missing", 401, "An access token is required"),
    Reason("token_malformed", 401, "The access token is malformed"),
    Reason("token_too_large", 401, "The access token is too large"),
    Reason("token_signature_invalid", 401, "The access token signature is invalid"),
    Reason("token_algorithm_not_allowed", 401, "The access token signing algorithm is not allowed"),
    Reason("token_key_unknown", 401, "The access token was signed with an unknown key"),
    Reason("token_expired", 401, "The access token has expired"),
    Reason("token_not_yet_valid", 401, "The access token is not yet valid"),
    Reason("token_issued_in_future", 401, "The access token was issued in the future"),
    Reason("token_issuer_invalid", 401, "The access token issuer is not accepted"),
    Reason("token_audience_invalid", 401, "The access token is not meant for this API"),
    Reason("token_type_invalid", 401, "The token is not an access token"),
    Reason("token_claims_missing", 401, "The access token lacks required claims"),
    Reason("token_in_query", 401, "Access tokens are accepted only in the Authorization header"),
    # Authorisation server (JWKS fetching, RFC 7662 introspection).
    Reason("jwks_unavailable", 503, "The authorization server's signing keys are unavailable"),
    Reason("introspection_unavailable", 503, "The token introspection endpoint is unavailable"),
    Reason("token_inactive", 401, "The access token is not active"),
    # Authorisation decisions on a valid token, revocation and suspension.
    Reason("insufficient_scope", 403, "The access token lacks a scope this operation needs"),
    Reason("token_revoked", 401, "The access token has been revoked"),
    Reason("client_suspended", 403, "The client or TPP is suspended"),
    Reason("tpp_client_mismatch", 403, "The TPP certificate does not belong to the token's client"),
    Reason("token_in_body", 401, "Access tokens are accepted only in the Authorization header"),
    Reason("token_in_cookie", 401, "Access tokens are accepted only in the Authorization header"),
    Reason("state_store_unavailable", 503, "The gateway's shared state store is unavailable"),
    # Rate limits, quotas and concurrency caps (OWASP API4:2023).
    Reason("rate_limited", 429, "Too many requests; slow down"),
    Reason("quota_exhausted", 429, "The request quota for this period is used up"),
    Reason("concurrency_limited", 429, "Too many requests of this client are in progress"),
    Reason("rate_limit_unavailable", 503, "The gateway's rate limit store is unavailable"),
    # Positive security model: parser hardening before schema validation (issue 6).
    Reason("body_not_json", 400, "The request body is not valid JSON"),
    Reason("json_invalid_utf8", 400, "The JSON body is not valid UTF-8"),
    Reason("json_too_deep", 400, "The JSON body is nested too deeply"),
    Reason("json_string_too_long", 400, "A JSON string is too long"),
    Reason("json_array_too_long", 400, "A JSON array has too many items"),
    Reason("json_too_many_keys", 400, "A JSON object has too many members"),
    Reason("json_duplicate_key", 400, "A JSON object has the same key twice"),
    Reason("json_number_invalid", 400, "A JSON number is out of the accepted range"),
)


def get_reason(code: str) -> Reason:
    """Return the catalogue entry; an unknown code is a programming error."""
    return REASONS[code]


class FinwardError(Exception):
    """Base class of finward's own exceptions."""


class ConfigError(FinwardError):
    """The configuration is invalid; ``problems`` lists every issue found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))

"""Sensitive-data masking (sans-IO): PANs, IBANs, e-mail addresses, phone numbers and
configured JSON paths, for every output path — responses, logs, events, error bodies.

    redactor = compile_redactor(MaskingConfig(paths=(PathRule("$.psu.name"),)))
    result = redactor.redact_json(body, allowed={"pan"})   # e.g. UK ReadPAN granted
    result.value       # masked copy
    result.findings    # (category, JSON pointer, masked) — never the value
    redactor.redact_text("card 4111 1111 1111 1111 declined").text
"""

from __future__ import annotations

from finward.masking.engine import DEFAULT_ENGINE, EngineName
from finward.masking.model import (
    MASK_CHAR,
    REDACTED,
    Category,
    Detection,
    EmailRule,
    Finding,
    IbanRule,
    MaskingConfig,
    MaskingConfigError,
    MaskMode,
    PanRule,
    PathRule,
    PhoneRule,
    TextFinding,
)
from finward.masking.redactor import JsonRedaction, Redactor, TextRedaction

__all__ = [
    "DEFAULT_ENGINE",
    "MASK_CHAR",
    "REDACTED",
    "Category",
    "Detection",
    "EmailRule",
    "EngineName",
    "Finding",
    "IbanRule",
    "JsonRedaction",
    "MaskMode",
    "MaskingConfig",
    "MaskingConfigError",
    "PanRule",
    "PathRule",
    "PhoneRule",
    "Redactor",
    "TextFinding",
    "TextRedaction",
    "compile_redactor",
]


def compile_redactor(
    config: MaskingConfig | None = None, *, engine: EngineName | None = None
) -> Redactor:
    """Compile the detectors and path rules once; the redactor is reused per request."""
    return Redactor(config or MaskingConfig(), engine)

"""The outcome of a policy: allow, or deny with a stable reason code."""

from __future__ import annotations

from dataclasses import dataclass

from finward.errors import FinwardError, get_reason


@dataclass(frozen=True, slots=True)
class Finding:
    """An observation a policy made without (necessarily) denying."""

    policy: str
    code: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    status: int = 200
    reason: str | None = None
    detail: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    findings: tuple[Finding, ...] = ()
    # Extra members of the problem+json body (e.g. a Berlin Group message ``code``).
    members: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def deny(
        reason: str,
        detail: str | None = None,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        status: int | None = None,
    ) -> Decision:
        entry = get_reason(reason)  # KeyError here means an uncatalogued code: a bug
        return Decision(
            allowed=False,
            status=status if status is not None else entry.status,
            reason=reason,
            detail=detail,
            headers=headers,
        )


ALLOW = Decision(allowed=True)


class DenialError(FinwardError):
    """An exception that stands for one refusal: subclasses set the ``reason`` code."""

    reason = "internal_error"

    def __init__(self, detail: str) -> None:
        super().__init__(f"{self.reason}: {detail}")
        self.detail = detail

    @property
    def status(self) -> int:
        return get_reason(self.reason).status

    def to_decision(self) -> Decision:
        return Decision.deny(self.reason, self.detail)

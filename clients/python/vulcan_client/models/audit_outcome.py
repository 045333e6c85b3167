from typing import Literal

AuditOutcome = Literal["denied", "failed", "ok"]

AUDIT_OUTCOME_VALUES: set[AuditOutcome] = {
    "denied",
    "failed",
    "ok",
}


def check_audit_outcome(value: str) -> AuditOutcome:
    if value in AUDIT_OUTCOME_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {AUDIT_OUTCOME_VALUES!r}"
    )

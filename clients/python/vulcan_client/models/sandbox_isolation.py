from typing import Literal

SandboxIsolation = Literal["auto", "gvisor", "microvm"]

SANDBOX_ISOLATION_VALUES: set[SandboxIsolation] = {
    "auto",
    "gvisor",
    "microvm",
}


def check_sandbox_isolation(value: str) -> SandboxIsolation:
    if value in SANDBOX_ISOLATION_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {SANDBOX_ISOLATION_VALUES!r}"
    )

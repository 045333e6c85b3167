from typing import Literal

SandboxState = Literal["ended", "lost", "paused", "running"]

SANDBOX_STATE_VALUES: set[SandboxState] = {
    "ended",
    "lost",
    "paused",
    "running",
}


def check_sandbox_state(value: str) -> SandboxState:
    if value in SANDBOX_STATE_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {SANDBOX_STATE_VALUES!r}"
    )

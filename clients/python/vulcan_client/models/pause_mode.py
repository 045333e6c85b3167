from typing import Literal

PauseMode = Literal["frozen", "saved"]

PAUSE_MODE_VALUES: set[PauseMode] = {
    "frozen",
    "saved",
}


def check_pause_mode(value: str) -> PauseMode:
    if value in PAUSE_MODE_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {PAUSE_MODE_VALUES!r}"
    )

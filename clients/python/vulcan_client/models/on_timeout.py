from typing import Literal

OnTimeout = Literal["kill", "pause"]

ON_TIMEOUT_VALUES: set[OnTimeout] = {
    "kill",
    "pause",
}


def check_on_timeout(value: str) -> OnTimeout:
    if value in ON_TIMEOUT_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {ON_TIMEOUT_VALUES!r}"
    )

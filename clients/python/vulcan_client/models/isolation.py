from typing import Literal

Isolation = Literal["auto", "gvisor", "isolate", "microvm"]

ISOLATION_VALUES: set[Isolation] = {
    "auto",
    "gvisor",
    "isolate",
    "microvm",
}


def check_isolation(value: str) -> Isolation:
    if value in ISOLATION_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {ISOLATION_VALUES!r}")

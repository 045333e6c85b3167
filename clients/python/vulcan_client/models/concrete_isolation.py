from typing import Literal

ConcreteIsolation = Literal["gvisor", "isolate", "microvm"]

CONCRETE_ISOLATION_VALUES: set[ConcreteIsolation] = {
    "gvisor",
    "isolate",
    "microvm",
}


def check_concrete_isolation(value: str) -> ConcreteIsolation:
    if value in CONCRETE_ISOLATION_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {CONCRETE_ISOLATION_VALUES!r}"
    )

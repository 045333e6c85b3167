from typing import Literal

Egress = Literal["allow", "none"]

EGRESS_VALUES: set[Egress] = {
    "allow",
    "none",
}


def check_egress(value: str) -> Egress:
    if value in EGRESS_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {EGRESS_VALUES!r}")

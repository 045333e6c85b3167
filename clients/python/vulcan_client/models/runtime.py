from typing import Literal

Runtime = Literal["go", "node", "oci", "python", "wasm"]

RUNTIME_VALUES: set[Runtime] = {
    "go",
    "node",
    "oci",
    "python",
    "wasm",
}


def check_runtime(value: str) -> Runtime:
    if value in RUNTIME_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {RUNTIME_VALUES!r}")

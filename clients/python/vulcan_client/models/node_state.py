from typing import Literal

NodeState = Literal["left", "live", "lost"]

NODE_STATE_VALUES: set[NodeState] = {
    "left",
    "live",
    "lost",
}


def check_node_state(value: str) -> NodeState:
    if value in NODE_STATE_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {NODE_STATE_VALUES!r}"
    )

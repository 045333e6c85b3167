from typing import Literal

GetWsSandboxesIdProcessesPidUpgrade = Literal["websocket"]

GET_WS_SANDBOXES_ID_PROCESSES_PID_UPGRADE_VALUES: set[
    GetWsSandboxesIdProcessesPidUpgrade
] = {
    "websocket",
}


def check_get_ws_sandboxes_id_processes_pid_upgrade(
    value: str,
) -> GetWsSandboxesIdProcessesPidUpgrade:
    if value in GET_WS_SANDBOXES_ID_PROCESSES_PID_UPGRADE_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {GET_WS_SANDBOXES_ID_PROCESSES_PID_UPGRADE_VALUES!r}"
    )

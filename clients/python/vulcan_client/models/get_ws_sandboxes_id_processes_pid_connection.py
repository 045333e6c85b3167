from typing import Literal

GetWsSandboxesIdProcessesPidConnection = Literal["Upgrade"]

GET_WS_SANDBOXES_ID_PROCESSES_PID_CONNECTION_VALUES: set[
    GetWsSandboxesIdProcessesPidConnection
] = {
    "Upgrade",
}


def check_get_ws_sandboxes_id_processes_pid_connection(
    value: str,
) -> GetWsSandboxesIdProcessesPidConnection:
    if value in GET_WS_SANDBOXES_ID_PROCESSES_PID_CONNECTION_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {GET_WS_SANDBOXES_ID_PROCESSES_PID_CONNECTION_VALUES!r}"
    )

from typing import Literal

GetWsSandboxesIdProcessesPidSecWebSocketVersion = Literal["13"]

GET_WS_SANDBOXES_ID_PROCESSES_PID_SEC_WEB_SOCKET_VERSION_VALUES: set[
    GetWsSandboxesIdProcessesPidSecWebSocketVersion
] = {
    "13",
}


def check_get_ws_sandboxes_id_processes_pid_sec_web_socket_version(
    value: str,
) -> GetWsSandboxesIdProcessesPidSecWebSocketVersion:
    if value in GET_WS_SANDBOXES_ID_PROCESSES_PID_SEC_WEB_SOCKET_VERSION_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {GET_WS_SANDBOXES_ID_PROCESSES_PID_SEC_WEB_SOCKET_VERSION_VALUES!r}"
    )

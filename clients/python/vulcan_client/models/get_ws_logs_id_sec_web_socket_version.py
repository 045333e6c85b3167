from typing import Literal

GetWsLogsIdSecWebSocketVersion = Literal["13"]

GET_WS_LOGS_ID_SEC_WEB_SOCKET_VERSION_VALUES: set[GetWsLogsIdSecWebSocketVersion] = {
    "13",
}


def check_get_ws_logs_id_sec_web_socket_version(
    value: str,
) -> GetWsLogsIdSecWebSocketVersion:
    if value in GET_WS_LOGS_ID_SEC_WEB_SOCKET_VERSION_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {GET_WS_LOGS_ID_SEC_WEB_SOCKET_VERSION_VALUES!r}"
    )

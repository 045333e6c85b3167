from typing import Literal

GetWsLogsIdConnection = Literal["Upgrade"]

GET_WS_LOGS_ID_CONNECTION_VALUES: set[GetWsLogsIdConnection] = {
    "Upgrade",
}


def check_get_ws_logs_id_connection(value: str) -> GetWsLogsIdConnection:
    if value in GET_WS_LOGS_ID_CONNECTION_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {GET_WS_LOGS_ID_CONNECTION_VALUES!r}"
    )

from typing import Literal

GetWsLogsIdUpgrade = Literal["websocket"]

GET_WS_LOGS_ID_UPGRADE_VALUES: set[GetWsLogsIdUpgrade] = {
    "websocket",
}


def check_get_ws_logs_id_upgrade(value: str) -> GetWsLogsIdUpgrade:
    if value in GET_WS_LOGS_ID_UPGRADE_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {GET_WS_LOGS_ID_UPGRADE_VALUES!r}"
    )

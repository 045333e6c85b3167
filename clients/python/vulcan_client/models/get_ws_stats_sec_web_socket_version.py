from typing import Literal

GetWsStatsSecWebSocketVersion = Literal["13"]

GET_WS_STATS_SEC_WEB_SOCKET_VERSION_VALUES: set[GetWsStatsSecWebSocketVersion] = {
    "13",
}


def check_get_ws_stats_sec_web_socket_version(
    value: str,
) -> GetWsStatsSecWebSocketVersion:
    if value in GET_WS_STATS_SEC_WEB_SOCKET_VERSION_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {GET_WS_STATS_SEC_WEB_SOCKET_VERSION_VALUES!r}"
    )

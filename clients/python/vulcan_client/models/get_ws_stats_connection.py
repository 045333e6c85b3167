from typing import Literal

GetWsStatsConnection = Literal["Upgrade"]

GET_WS_STATS_CONNECTION_VALUES: set[GetWsStatsConnection] = {
    "Upgrade",
}


def check_get_ws_stats_connection(value: str) -> GetWsStatsConnection:
    if value in GET_WS_STATS_CONNECTION_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {GET_WS_STATS_CONNECTION_VALUES!r}"
    )

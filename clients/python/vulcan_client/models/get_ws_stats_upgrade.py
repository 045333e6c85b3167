from typing import Literal

GetWsStatsUpgrade = Literal["websocket"]

GET_WS_STATS_UPGRADE_VALUES: set[GetWsStatsUpgrade] = {
    "websocket",
}


def check_get_ws_stats_upgrade(value: str) -> GetWsStatsUpgrade:
    if value in GET_WS_STATS_UPGRADE_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {GET_WS_STATS_UPGRADE_VALUES!r}"
    )

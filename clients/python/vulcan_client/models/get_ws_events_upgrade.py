from typing import Literal

GetWsEventsUpgrade = Literal["websocket"]

GET_WS_EVENTS_UPGRADE_VALUES: set[GetWsEventsUpgrade] = {
    "websocket",
}


def check_get_ws_events_upgrade(value: str) -> GetWsEventsUpgrade:
    if value in GET_WS_EVENTS_UPGRADE_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {GET_WS_EVENTS_UPGRADE_VALUES!r}"
    )

from typing import Literal

GetWsEventsConnection = Literal["Upgrade"]

GET_WS_EVENTS_CONNECTION_VALUES: set[GetWsEventsConnection] = {
    "Upgrade",
}


def check_get_ws_events_connection(value: str) -> GetWsEventsConnection:
    if value in GET_WS_EVENTS_CONNECTION_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {GET_WS_EVENTS_CONNECTION_VALUES!r}"
    )

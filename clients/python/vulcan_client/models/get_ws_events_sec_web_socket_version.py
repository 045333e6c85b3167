from typing import Literal

GetWsEventsSecWebSocketVersion = Literal["13"]

GET_WS_EVENTS_SEC_WEB_SOCKET_VERSION_VALUES: set[GetWsEventsSecWebSocketVersion] = {
    "13",
}


def check_get_ws_events_sec_web_socket_version(
    value: str,
) -> GetWsEventsSecWebSocketVersion:
    if value in GET_WS_EVENTS_SEC_WEB_SOCKET_VERSION_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {GET_WS_EVENTS_SEC_WEB_SOCKET_VERSION_VALUES!r}"
    )

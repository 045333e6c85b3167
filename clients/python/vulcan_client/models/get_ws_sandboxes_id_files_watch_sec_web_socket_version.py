from typing import Literal

GetWsSandboxesIdFilesWatchSecWebSocketVersion = Literal["13"]

GET_WS_SANDBOXES_ID_FILES_WATCH_SEC_WEB_SOCKET_VERSION_VALUES: set[
    GetWsSandboxesIdFilesWatchSecWebSocketVersion
] = {
    "13",
}


def check_get_ws_sandboxes_id_files_watch_sec_web_socket_version(
    value: str,
) -> GetWsSandboxesIdFilesWatchSecWebSocketVersion:
    if value in GET_WS_SANDBOXES_ID_FILES_WATCH_SEC_WEB_SOCKET_VERSION_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {GET_WS_SANDBOXES_ID_FILES_WATCH_SEC_WEB_SOCKET_VERSION_VALUES!r}"
    )

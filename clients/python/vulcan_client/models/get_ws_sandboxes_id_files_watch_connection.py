from typing import Literal

GetWsSandboxesIdFilesWatchConnection = Literal["Upgrade"]

GET_WS_SANDBOXES_ID_FILES_WATCH_CONNECTION_VALUES: set[
    GetWsSandboxesIdFilesWatchConnection
] = {
    "Upgrade",
}


def check_get_ws_sandboxes_id_files_watch_connection(
    value: str,
) -> GetWsSandboxesIdFilesWatchConnection:
    if value in GET_WS_SANDBOXES_ID_FILES_WATCH_CONNECTION_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {GET_WS_SANDBOXES_ID_FILES_WATCH_CONNECTION_VALUES!r}"
    )

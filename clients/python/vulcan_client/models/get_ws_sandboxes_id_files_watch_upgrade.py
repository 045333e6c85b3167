from typing import Literal

GetWsSandboxesIdFilesWatchUpgrade = Literal["websocket"]

GET_WS_SANDBOXES_ID_FILES_WATCH_UPGRADE_VALUES: set[
    GetWsSandboxesIdFilesWatchUpgrade
] = {
    "websocket",
}


def check_get_ws_sandboxes_id_files_watch_upgrade(
    value: str,
) -> GetWsSandboxesIdFilesWatchUpgrade:
    if value in GET_WS_SANDBOXES_ID_FILES_WATCH_UPGRADE_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {GET_WS_SANDBOXES_ID_FILES_WATCH_UPGRADE_VALUES!r}"
    )

from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.event import Event
from ...models.get_ws_events_connection import (
    GetWsEventsConnection,
)
from ...models.get_ws_events_sec_web_socket_version import (
    GetWsEventsSecWebSocketVersion,
)
from ...models.get_ws_events_upgrade import (
    GetWsEventsUpgrade,
)
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    kind: str | Unset = UNSET,
    type_: str | Unset = UNSET,
    status: str | Unset = UNSET,
    connection: GetWsEventsConnection,
    upgrade: GetWsEventsUpgrade,
    sec_web_socket_version: GetWsEventsSecWebSocketVersion,
    sec_web_socket_key: str,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    headers["Connection"] = str(connection)

    headers["Upgrade"] = str(upgrade)

    headers["Sec-WebSocket-Version"] = str(sec_web_socket_version)

    headers["Sec-WebSocket-Key"] = sec_web_socket_key

    params: dict[str, Any] = {}

    params["kind"] = kind

    params["type"] = type_

    params["status"] = status

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/ws/events",
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | Event | None:
    if response.status_code == 101:
        response_101 = Event.from_dict(response.json())

        return response_101

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ErrorBody.from_dict(response.json())

        return response_403

    if response.status_code == 404:
        response_404 = ErrorBody.from_dict(response.json())

        return response_404

    if response.status_code == 405:
        response_405 = ErrorBody.from_dict(response.json())

        return response_405

    if response.status_code == 409:
        response_409 = ErrorBody.from_dict(response.json())

        return response_409

    if response.status_code == 413:
        response_413 = ErrorBody.from_dict(response.json())

        return response_413

    if response.status_code == 415:
        response_415 = ErrorBody.from_dict(response.json())

        return response_415

    if response.status_code == 422:
        response_422 = ErrorBody.from_dict(response.json())

        return response_422

    if response.status_code == 429:
        response_429 = ErrorBody.from_dict(response.json())

        return response_429

    if response.status_code == 502:
        response_502 = ErrorBody.from_dict(response.json())

        return response_502

    if response.status_code == 503:
        response_503 = ErrorBody.from_dict(response.json())

        return response_503

    if response.status_code == 504:
        response_504 = ErrorBody.from_dict(response.json())

        return response_504

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ErrorBody | Event]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    kind: str | Unset = UNSET,
    type_: str | Unset = UNSET,
    status: str | Unset = UNSET,
    connection: GetWsEventsConnection,
    upgrade: GetWsEventsUpgrade,
    sec_web_socket_version: GetWsEventsSecWebSocketVersion,
    sec_web_socket_key: str,
) -> Response[ErrorBody | Event]:
    """`GET /ws/events[?kind=][&type=][&status=]`: lifecycle events as they happen, on every
    node — workloads `created`, `started`, `finished` (with `status`), nodes `joined`,
    `lost`, `left` (admins only), functions `deployed`, schedules `fired`.

    Args:
        kind (str | Unset):
        type_ (str | Unset):
        status (str | Unset):
        connection (GetWsEventsConnection):
        upgrade (GetWsEventsUpgrade):
        sec_web_socket_version (GetWsEventsSecWebSocketVersion):
        sec_web_socket_key (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | Event]
    """

    kwargs = _get_kwargs(
        kind=kind,
        type_=type_,
        status=status,
        connection=connection,
        upgrade=upgrade,
        sec_web_socket_version=sec_web_socket_version,
        sec_web_socket_key=sec_web_socket_key,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient | Client,
    kind: str | Unset = UNSET,
    type_: str | Unset = UNSET,
    status: str | Unset = UNSET,
    connection: GetWsEventsConnection,
    upgrade: GetWsEventsUpgrade,
    sec_web_socket_version: GetWsEventsSecWebSocketVersion,
    sec_web_socket_key: str,
) -> ErrorBody | Event | None:
    """`GET /ws/events[?kind=][&type=][&status=]`: lifecycle events as they happen, on every
    node — workloads `created`, `started`, `finished` (with `status`), nodes `joined`,
    `lost`, `left` (admins only), functions `deployed`, schedules `fired`.

    Args:
        kind (str | Unset):
        type_ (str | Unset):
        status (str | Unset):
        connection (GetWsEventsConnection):
        upgrade (GetWsEventsUpgrade):
        sec_web_socket_version (GetWsEventsSecWebSocketVersion):
        sec_web_socket_key (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | Event
    """

    return sync_detailed(
        client=client,
        kind=kind,
        type_=type_,
        status=status,
        connection=connection,
        upgrade=upgrade,
        sec_web_socket_version=sec_web_socket_version,
        sec_web_socket_key=sec_web_socket_key,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    kind: str | Unset = UNSET,
    type_: str | Unset = UNSET,
    status: str | Unset = UNSET,
    connection: GetWsEventsConnection,
    upgrade: GetWsEventsUpgrade,
    sec_web_socket_version: GetWsEventsSecWebSocketVersion,
    sec_web_socket_key: str,
) -> Response[ErrorBody | Event]:
    """`GET /ws/events[?kind=][&type=][&status=]`: lifecycle events as they happen, on every
    node — workloads `created`, `started`, `finished` (with `status`), nodes `joined`,
    `lost`, `left` (admins only), functions `deployed`, schedules `fired`.

    Args:
        kind (str | Unset):
        type_ (str | Unset):
        status (str | Unset):
        connection (GetWsEventsConnection):
        upgrade (GetWsEventsUpgrade):
        sec_web_socket_version (GetWsEventsSecWebSocketVersion):
        sec_web_socket_key (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | Event]
    """

    kwargs = _get_kwargs(
        kind=kind,
        type_=type_,
        status=status,
        connection=connection,
        upgrade=upgrade,
        sec_web_socket_version=sec_web_socket_version,
        sec_web_socket_key=sec_web_socket_key,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    kind: str | Unset = UNSET,
    type_: str | Unset = UNSET,
    status: str | Unset = UNSET,
    connection: GetWsEventsConnection,
    upgrade: GetWsEventsUpgrade,
    sec_web_socket_version: GetWsEventsSecWebSocketVersion,
    sec_web_socket_key: str,
) -> ErrorBody | Event | None:
    """`GET /ws/events[?kind=][&type=][&status=]`: lifecycle events as they happen, on every
    node — workloads `created`, `started`, `finished` (with `status`), nodes `joined`,
    `lost`, `left` (admins only), functions `deployed`, schedules `fired`.

    Args:
        kind (str | Unset):
        type_ (str | Unset):
        status (str | Unset):
        connection (GetWsEventsConnection):
        upgrade (GetWsEventsUpgrade):
        sec_web_socket_version (GetWsEventsSecWebSocketVersion):
        sec_web_socket_key (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | Event
    """

    return (
        await asyncio_detailed(
            client=client,
            kind=kind,
            type_=type_,
            status=status,
            connection=connection,
            upgrade=upgrade,
            sec_web_socket_version=sec_web_socket_version,
            sec_web_socket_key=sec_web_socket_key,
        )
    ).parsed

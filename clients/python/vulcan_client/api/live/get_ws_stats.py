from http import HTTPStatus
from typing import Any, cast

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.get_ws_stats_connection import (
    GetWsStatsConnection,
)
from ...models.get_ws_stats_sec_web_socket_version import (
    GetWsStatsSecWebSocketVersion,
)
from ...models.get_ws_stats_upgrade import GetWsStatsUpgrade
from ...types import Response


def _get_kwargs(
    *,
    connection: GetWsStatsConnection,
    upgrade: GetWsStatsUpgrade,
    sec_web_socket_version: GetWsStatsSecWebSocketVersion,
    sec_web_socket_key: str,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    headers["Connection"] = str(connection)

    headers["Upgrade"] = str(upgrade)

    headers["Sec-WebSocket-Version"] = str(sec_web_socket_version)

    headers["Sec-WebSocket-Key"] = sec_web_socket_key

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/ws/stats",
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Any | ErrorBody | None:
    if response.status_code == 101:
        response_101 = cast(Any, None)
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
) -> Response[Any | ErrorBody]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    connection: GetWsStatsConnection,
    upgrade: GetWsStatsUpgrade,
    sec_web_socket_version: GetWsStatsSecWebSocketVersion,
    sec_web_socket_key: str,
) -> Response[Any | ErrorBody]:
    """`GET /ws/stats`: `/v1/stats` (the caller's tenant's, or everyone's for an admin) every
    second, and at once when a workload the caller sees changes.

    Args:
        connection (GetWsStatsConnection):
        upgrade (GetWsStatsUpgrade):
        sec_web_socket_version (GetWsStatsSecWebSocketVersion):
        sec_web_socket_key (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ErrorBody]
    """

    kwargs = _get_kwargs(
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
    connection: GetWsStatsConnection,
    upgrade: GetWsStatsUpgrade,
    sec_web_socket_version: GetWsStatsSecWebSocketVersion,
    sec_web_socket_key: str,
) -> Any | ErrorBody | None:
    """`GET /ws/stats`: `/v1/stats` (the caller's tenant's, or everyone's for an admin) every
    second, and at once when a workload the caller sees changes.

    Args:
        connection (GetWsStatsConnection):
        upgrade (GetWsStatsUpgrade):
        sec_web_socket_version (GetWsStatsSecWebSocketVersion):
        sec_web_socket_key (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ErrorBody
    """

    return sync_detailed(
        client=client,
        connection=connection,
        upgrade=upgrade,
        sec_web_socket_version=sec_web_socket_version,
        sec_web_socket_key=sec_web_socket_key,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    connection: GetWsStatsConnection,
    upgrade: GetWsStatsUpgrade,
    sec_web_socket_version: GetWsStatsSecWebSocketVersion,
    sec_web_socket_key: str,
) -> Response[Any | ErrorBody]:
    """`GET /ws/stats`: `/v1/stats` (the caller's tenant's, or everyone's for an admin) every
    second, and at once when a workload the caller sees changes.

    Args:
        connection (GetWsStatsConnection):
        upgrade (GetWsStatsUpgrade):
        sec_web_socket_version (GetWsStatsSecWebSocketVersion):
        sec_web_socket_key (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ErrorBody]
    """

    kwargs = _get_kwargs(
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
    connection: GetWsStatsConnection,
    upgrade: GetWsStatsUpgrade,
    sec_web_socket_version: GetWsStatsSecWebSocketVersion,
    sec_web_socket_key: str,
) -> Any | ErrorBody | None:
    """`GET /ws/stats`: `/v1/stats` (the caller's tenant's, or everyone's for an admin) every
    second, and at once when a workload the caller sees changes.

    Args:
        connection (GetWsStatsConnection):
        upgrade (GetWsStatsUpgrade):
        sec_web_socket_version (GetWsStatsSecWebSocketVersion):
        sec_web_socket_key (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ErrorBody
    """

    return (
        await asyncio_detailed(
            client=client,
            connection=connection,
            upgrade=upgrade,
            sec_web_socket_version=sec_web_socket_version,
            sec_web_socket_key=sec_web_socket_key,
        )
    ).parsed

from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.process_info import ProcessInfo
from ...models.pty_size import PtySize
from ...types import Response


def _get_kwargs(
    id: str,
    pid: int,
    *,
    body: PtySize,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/sandboxes/{id}/processes/{pid}/resize".format(
            id=quote(str(id), safe=""),
            pid=quote(str(pid), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | ProcessInfo | None:
    if response.status_code == 200:
        response_200 = ProcessInfo.from_dict(response.json())

        return response_200

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
) -> Response[ErrorBody | ProcessInfo]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    id: str,
    pid: int,
    *,
    client: AuthenticatedClient | Client,
    body: PtySize,
) -> Response[ErrorBody | ProcessInfo]:
    """`POST /v1/sandboxes/{id}/processes/{pid}/resize {rows, cols}`: the new size of a
    process's terminal (it gets `SIGWINCH`); `400` for a process without one.

    Args:
        id (str):
        pid (int):
        body (PtySize): A terminal's size.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | ProcessInfo]
    """

    kwargs = _get_kwargs(
        id=id,
        pid=pid,
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    id: str,
    pid: int,
    *,
    client: AuthenticatedClient | Client,
    body: PtySize,
) -> ErrorBody | ProcessInfo | None:
    """`POST /v1/sandboxes/{id}/processes/{pid}/resize {rows, cols}`: the new size of a
    process's terminal (it gets `SIGWINCH`); `400` for a process without one.

    Args:
        id (str):
        pid (int):
        body (PtySize): A terminal's size.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | ProcessInfo
    """

    return sync_detailed(
        id=id,
        pid=pid,
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    id: str,
    pid: int,
    *,
    client: AuthenticatedClient | Client,
    body: PtySize,
) -> Response[ErrorBody | ProcessInfo]:
    """`POST /v1/sandboxes/{id}/processes/{pid}/resize {rows, cols}`: the new size of a
    process's terminal (it gets `SIGWINCH`); `400` for a process without one.

    Args:
        id (str):
        pid (int):
        body (PtySize): A terminal's size.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | ProcessInfo]
    """

    kwargs = _get_kwargs(
        id=id,
        pid=pid,
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    id: str,
    pid: int,
    *,
    client: AuthenticatedClient | Client,
    body: PtySize,
) -> ErrorBody | ProcessInfo | None:
    """`POST /v1/sandboxes/{id}/processes/{pid}/resize {rows, cols}`: the new size of a
    process's terminal (it gets `SIGWINCH`); `400` for a process without one.

    Args:
        id (str):
        pid (int):
        body (PtySize): A terminal's size.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | ProcessInfo
    """

    return (
        await asyncio_detailed(
            id=id,
            pid=pid,
            client=client,
            body=body,
        )
    ).parsed

from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.isolation import Isolation
from ...models.workload_list import WorkloadList
from ...models.workload_status import WorkloadStatus
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    limit: int | Unset = UNSET,
    offset: int | Unset = UNSET,
    after: str | Unset = UNSET,
    status: WorkloadStatus | Unset = UNSET,
    isolation: Isolation | Unset = UNSET,
    function: str | Unset = UNSET,
    schedule: str | Unset = UNSET,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    params["limit"] = limit

    params["offset"] = offset

    params["after"] = after

    json_status: str | Unset = UNSET
    if not isinstance(status, Unset):
        json_status = status

    params["status"] = json_status

    json_isolation: str | Unset = UNSET
    if not isinstance(isolation, Unset):
        json_isolation = isolation

    params["isolation"] = json_isolation

    params["function"] = function

    params["schedule"] = schedule

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/workloads",
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | WorkloadList | None:
    if response.status_code == 200:
        response_200 = WorkloadList.from_dict(response.json())

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
) -> Response[ErrorBody | WorkloadList]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    limit: int | Unset = UNSET,
    offset: int | Unset = UNSET,
    after: str | Unset = UNSET,
    status: WorkloadStatus | Unset = UNSET,
    isolation: Isolation | Unset = UNSET,
    function: str | Unset = UNSET,
    schedule: str | Unset = UNSET,
) -> Response[ErrorBody | WorkloadList]:
    """`GET /v1/workloads?limit=&offset=&after=&status=&isolation=&function=`, newest first. `after` is
    a cursor (the `next` of the page before): a page deep in the list costs the same as
    the first.

    Args:
        limit (int | Unset):
        offset (int | Unset):
        after (str | Unset):
        status (WorkloadStatus | Unset): Where a workload is in its life.
        isolation (Isolation | Unset): How a workload is isolated from the host. `Auto` only
            appears in requests: a stored
            workload always carries the isolation that was actually used.
        function (str | Unset):
        schedule (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | WorkloadList]
    """

    kwargs = _get_kwargs(
        limit=limit,
        offset=offset,
        after=after,
        status=status,
        isolation=isolation,
        function=function,
        schedule=schedule,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient | Client,
    limit: int | Unset = UNSET,
    offset: int | Unset = UNSET,
    after: str | Unset = UNSET,
    status: WorkloadStatus | Unset = UNSET,
    isolation: Isolation | Unset = UNSET,
    function: str | Unset = UNSET,
    schedule: str | Unset = UNSET,
) -> ErrorBody | WorkloadList | None:
    """`GET /v1/workloads?limit=&offset=&after=&status=&isolation=&function=`, newest first. `after` is
    a cursor (the `next` of the page before): a page deep in the list costs the same as
    the first.

    Args:
        limit (int | Unset):
        offset (int | Unset):
        after (str | Unset):
        status (WorkloadStatus | Unset): Where a workload is in its life.
        isolation (Isolation | Unset): How a workload is isolated from the host. `Auto` only
            appears in requests: a stored
            workload always carries the isolation that was actually used.
        function (str | Unset):
        schedule (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | WorkloadList
    """

    return sync_detailed(
        client=client,
        limit=limit,
        offset=offset,
        after=after,
        status=status,
        isolation=isolation,
        function=function,
        schedule=schedule,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    limit: int | Unset = UNSET,
    offset: int | Unset = UNSET,
    after: str | Unset = UNSET,
    status: WorkloadStatus | Unset = UNSET,
    isolation: Isolation | Unset = UNSET,
    function: str | Unset = UNSET,
    schedule: str | Unset = UNSET,
) -> Response[ErrorBody | WorkloadList]:
    """`GET /v1/workloads?limit=&offset=&after=&status=&isolation=&function=`, newest first. `after` is
    a cursor (the `next` of the page before): a page deep in the list costs the same as
    the first.

    Args:
        limit (int | Unset):
        offset (int | Unset):
        after (str | Unset):
        status (WorkloadStatus | Unset): Where a workload is in its life.
        isolation (Isolation | Unset): How a workload is isolated from the host. `Auto` only
            appears in requests: a stored
            workload always carries the isolation that was actually used.
        function (str | Unset):
        schedule (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | WorkloadList]
    """

    kwargs = _get_kwargs(
        limit=limit,
        offset=offset,
        after=after,
        status=status,
        isolation=isolation,
        function=function,
        schedule=schedule,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    limit: int | Unset = UNSET,
    offset: int | Unset = UNSET,
    after: str | Unset = UNSET,
    status: WorkloadStatus | Unset = UNSET,
    isolation: Isolation | Unset = UNSET,
    function: str | Unset = UNSET,
    schedule: str | Unset = UNSET,
) -> ErrorBody | WorkloadList | None:
    """`GET /v1/workloads?limit=&offset=&after=&status=&isolation=&function=`, newest first. `after` is
    a cursor (the `next` of the page before): a page deep in the list costs the same as
    the first.

    Args:
        limit (int | Unset):
        offset (int | Unset):
        after (str | Unset):
        status (WorkloadStatus | Unset): Where a workload is in its life.
        isolation (Isolation | Unset): How a workload is isolated from the host. `Auto` only
            appears in requests: a stored
            workload always carries the isolation that was actually used.
        function (str | Unset):
        schedule (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | WorkloadList
    """

    return (
        await asyncio_detailed(
            client=client,
            limit=limit,
            offset=offset,
            after=after,
            status=status,
            isolation=isolation,
            function=function,
            schedule=schedule,
        )
    ).parsed

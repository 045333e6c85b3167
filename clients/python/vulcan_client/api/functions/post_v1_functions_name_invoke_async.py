from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.workload import Workload
from ...types import UNSET, Response, Unset


def _get_kwargs(
    name: str,
    *,
    body: Any,
    tenant: str | Unset = UNSET,
    max_attempts: int | Unset = UNSET,
    backoff_s: int | Unset = UNSET,
    max_age_s: int | Unset = UNSET,
    on_failure_queue: str | Unset = UNSET,
    callback_url: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    params: dict[str, Any] = {}

    params["tenant"] = tenant

    params["max_attempts"] = max_attempts

    params["backoff_s"] = backoff_s

    params["max_age_s"] = max_age_s

    params["on_failure_queue"] = on_failure_queue

    params["callback_url"] = callback_url

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/functions/{name}/invoke/async".format(
            name=quote(str(name), safe=""),
        ),
        "params": params,
    }

    _kwargs["json"] = body

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | Workload | None:
    if response.status_code == 202:
        response_202 = Workload.from_dict(response.json())

        return response_202

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
) -> Response[ErrorBody | Workload]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: Any,
    tenant: str | Unset = UNSET,
    max_attempts: int | Unset = UNSET,
    backoff_s: int | Unset = UNSET,
    max_age_s: int | Unset = UNSET,
    on_failure_queue: str | Unset = UNSET,
    callback_url: str | Unset = UNSET,
) -> Response[ErrorBody | Workload]:
    """`POST /v1/functions/{name}/invoke/async`: the body is the input; answers `202` at once
    like `POST /v1/workloads/async`, with its retry options in the query.

    Args:
        name (str):
        tenant (str | Unset):
        max_attempts (int | Unset):
        backoff_s (int | Unset):
        max_age_s (int | Unset):
        on_failure_queue (str | Unset):
        callback_url (str | Unset):
        body (Any):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | Workload]
    """

    kwargs = _get_kwargs(
        name=name,
        body=body,
        tenant=tenant,
        max_attempts=max_attempts,
        backoff_s=backoff_s,
        max_age_s=max_age_s,
        on_failure_queue=on_failure_queue,
        callback_url=callback_url,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: Any,
    tenant: str | Unset = UNSET,
    max_attempts: int | Unset = UNSET,
    backoff_s: int | Unset = UNSET,
    max_age_s: int | Unset = UNSET,
    on_failure_queue: str | Unset = UNSET,
    callback_url: str | Unset = UNSET,
) -> ErrorBody | Workload | None:
    """`POST /v1/functions/{name}/invoke/async`: the body is the input; answers `202` at once
    like `POST /v1/workloads/async`, with its retry options in the query.

    Args:
        name (str):
        tenant (str | Unset):
        max_attempts (int | Unset):
        backoff_s (int | Unset):
        max_age_s (int | Unset):
        on_failure_queue (str | Unset):
        callback_url (str | Unset):
        body (Any):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | Workload
    """

    return sync_detailed(
        name=name,
        client=client,
        body=body,
        tenant=tenant,
        max_attempts=max_attempts,
        backoff_s=backoff_s,
        max_age_s=max_age_s,
        on_failure_queue=on_failure_queue,
        callback_url=callback_url,
    ).parsed


async def asyncio_detailed(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: Any,
    tenant: str | Unset = UNSET,
    max_attempts: int | Unset = UNSET,
    backoff_s: int | Unset = UNSET,
    max_age_s: int | Unset = UNSET,
    on_failure_queue: str | Unset = UNSET,
    callback_url: str | Unset = UNSET,
) -> Response[ErrorBody | Workload]:
    """`POST /v1/functions/{name}/invoke/async`: the body is the input; answers `202` at once
    like `POST /v1/workloads/async`, with its retry options in the query.

    Args:
        name (str):
        tenant (str | Unset):
        max_attempts (int | Unset):
        backoff_s (int | Unset):
        max_age_s (int | Unset):
        on_failure_queue (str | Unset):
        callback_url (str | Unset):
        body (Any):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | Workload]
    """

    kwargs = _get_kwargs(
        name=name,
        body=body,
        tenant=tenant,
        max_attempts=max_attempts,
        backoff_s=backoff_s,
        max_age_s=max_age_s,
        on_failure_queue=on_failure_queue,
        callback_url=callback_url,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: Any,
    tenant: str | Unset = UNSET,
    max_attempts: int | Unset = UNSET,
    backoff_s: int | Unset = UNSET,
    max_age_s: int | Unset = UNSET,
    on_failure_queue: str | Unset = UNSET,
    callback_url: str | Unset = UNSET,
) -> ErrorBody | Workload | None:
    """`POST /v1/functions/{name}/invoke/async`: the body is the input; answers `202` at once
    like `POST /v1/workloads/async`, with its retry options in the query.

    Args:
        name (str):
        tenant (str | Unset):
        max_attempts (int | Unset):
        backoff_s (int | Unset):
        max_age_s (int | Unset):
        on_failure_queue (str | Unset):
        callback_url (str | Unset):
        body (Any):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | Workload
    """

    return (
        await asyncio_detailed(
            name=name,
            client=client,
            body=body,
            tenant=tenant,
            max_attempts=max_attempts,
            backoff_s=backoff_s,
            max_age_s=max_age_s,
            on_failure_queue=on_failure_queue,
            callback_url=callback_url,
        )
    ).parsed

from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.publish import Publish
from ...models.published import Published
from ...types import UNSET, Response, Unset


def _get_kwargs(
    name: str,
    *,
    body: Publish,
    tenant: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    params: dict[str, Any] = {}

    params["tenant"] = tenant

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/topics/{name}/publish".format(
            name=quote(str(name), safe=""),
        ),
        "params": params,
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | Published | None:
    if response.status_code == 201:
        response_201 = Published.from_dict(response.json())

        return response_201

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
) -> Response[ErrorBody | Published]:
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
    body: Publish,
    tenant: str | Unset = UNSET,
) -> Response[ErrorBody | Published]:
    """`POST /v1/topics/{name}/publish`: a copy to each subscribed queue (all or none: `413`
    if one takes smaller messages), then a POST stored for each subscribed URL and an
    invocation of each subscribed function (retried twice if it fails).

    Args:
        name (str):
        tenant (str | Unset):
        body (Publish): `POST /v1/topics/{name}/publish`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | Published]
    """

    kwargs = _get_kwargs(
        name=name,
        body=body,
        tenant=tenant,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: Publish,
    tenant: str | Unset = UNSET,
) -> ErrorBody | Published | None:
    """`POST /v1/topics/{name}/publish`: a copy to each subscribed queue (all or none: `413`
    if one takes smaller messages), then a POST stored for each subscribed URL and an
    invocation of each subscribed function (retried twice if it fails).

    Args:
        name (str):
        tenant (str | Unset):
        body (Publish): `POST /v1/topics/{name}/publish`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | Published
    """

    return sync_detailed(
        name=name,
        client=client,
        body=body,
        tenant=tenant,
    ).parsed


async def asyncio_detailed(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: Publish,
    tenant: str | Unset = UNSET,
) -> Response[ErrorBody | Published]:
    """`POST /v1/topics/{name}/publish`: a copy to each subscribed queue (all or none: `413`
    if one takes smaller messages), then a POST stored for each subscribed URL and an
    invocation of each subscribed function (retried twice if it fails).

    Args:
        name (str):
        tenant (str | Unset):
        body (Publish): `POST /v1/topics/{name}/publish`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | Published]
    """

    kwargs = _get_kwargs(
        name=name,
        body=body,
        tenant=tenant,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: Publish,
    tenant: str | Unset = UNSET,
) -> ErrorBody | Published | None:
    """`POST /v1/topics/{name}/publish`: a copy to each subscribed queue (all or none: `413`
    if one takes smaller messages), then a POST stored for each subscribed URL and an
    invocation of each subscribed function (retried twice if it fails).

    Args:
        name (str):
        tenant (str | Unset):
        body (Publish): `POST /v1/topics/{name}/publish`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | Published
    """

    return (
        await asyncio_detailed(
            name=name,
            client=client,
            body=body,
            tenant=tenant,
        )
    ).parsed

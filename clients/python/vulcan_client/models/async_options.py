from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.on_failure import OnFailure
    from ..models.retry import Retry


T = TypeVar("T", bound="AsyncOptions")


@_attrs_define
class AsyncOptions:
    """What a request for an async workload (or invocation) may ask to happen after it ends.

    Attributes:
        callback_url (None | str | Unset): POSTed the final workload's JSON when it has ended for good, signed with the
            tenant's secret `CALLBACK_SIGNING_KEY` (header `X-Vulcan-Signature: t=<unix
            seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`), retried with backoff until it
            answers 2xx.
        max_age_s (int | None | Unset): No attempt starts (and none waits in the queue) later than this many seconds
            after
            the request: one still waiting then fails, and no retry follows.
        on_failure (None | OnFailure | Unset):
        retry (None | Retry | Unset):
    """

    callback_url: None | str | Unset = UNSET
    max_age_s: int | None | Unset = UNSET
    on_failure: None | OnFailure | Unset = UNSET
    retry: None | Retry | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.on_failure import OnFailure
        from ..models.retry import Retry

        callback_url: None | str | Unset
        if isinstance(self.callback_url, Unset):
            callback_url = UNSET
        else:
            callback_url = self.callback_url

        max_age_s: int | None | Unset
        if isinstance(self.max_age_s, Unset):
            max_age_s = UNSET
        else:
            max_age_s = self.max_age_s

        on_failure: dict[str, Any] | None | Unset
        if isinstance(self.on_failure, Unset):
            on_failure = UNSET
        elif isinstance(self.on_failure, OnFailure):
            on_failure = self.on_failure.to_dict()
        else:
            on_failure = self.on_failure

        retry: dict[str, Any] | None | Unset
        if isinstance(self.retry, Unset):
            retry = UNSET
        elif isinstance(self.retry, Retry):
            retry = self.retry.to_dict()
        else:
            retry = self.retry

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({})
        if callback_url is not UNSET:
            field_dict["callback_url"] = callback_url
        if max_age_s is not UNSET:
            field_dict["max_age_s"] = max_age_s
        if on_failure is not UNSET:
            field_dict["on_failure"] = on_failure
        if retry is not UNSET:
            field_dict["retry"] = retry

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.on_failure import OnFailure
        from ..models.retry import Retry

        d = dict(src_dict)

        def _parse_callback_url(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        callback_url = _parse_callback_url(d.pop("callback_url", UNSET))

        def _parse_max_age_s(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_age_s = _parse_max_age_s(d.pop("max_age_s", UNSET))

        def _parse_on_failure(data: object) -> None | OnFailure | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                on_failure_type_0 = OnFailure.from_dict(data)

                return on_failure_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | OnFailure | Unset, data)

        on_failure = _parse_on_failure(d.pop("on_failure", UNSET))

        def _parse_retry(data: object) -> None | Retry | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                retry_type_0 = Retry.from_dict(data)

                return retry_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Retry | Unset, data)

        retry = _parse_retry(d.pop("retry", UNSET))

        async_options = cls(
            callback_url=callback_url,
            max_age_s=max_age_s,
            on_failure=on_failure,
            retry=retry,
        )

        async_options.additional_properties = d
        return async_options

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.on_failure import OnFailure
    from ..models.retry import Retry


T = TypeVar("T", bound="AsyncPolicy")


@_attrs_define
class AsyncPolicy:
    """What an async workload asked to happen after it ends. Kept in its spec; a retry carries
    it on with `attempt` one more.

        Attributes:
            attempt (int): Which attempt this is, from 1.
            first_submitted_at (datetime.datetime): When the first attempt was submitted.
            callback_url (None | str | Unset):
            max_age_s (int | None | Unset): No attempt starts (and none waits in the queue) later than this after the first
                was
                submitted.
            on_failure (None | OnFailure | Unset):
            private_ok (bool | Unset): Whether the callback may reach a never-reachable range (loopback, private): its
                submitter was an admin, or the tenant's quota lists the destination.
            retry (None | Retry | Unset):
    """

    attempt: int
    first_submitted_at: datetime.datetime
    callback_url: None | str | Unset = UNSET
    max_age_s: int | None | Unset = UNSET
    on_failure: None | OnFailure | Unset = UNSET
    private_ok: bool | Unset = UNSET
    retry: None | Retry | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.on_failure import OnFailure
        from ..models.retry import Retry

        attempt = self.attempt

        first_submitted_at = self.first_submitted_at.isoformat()

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

        private_ok = self.private_ok

        retry: dict[str, Any] | None | Unset
        if isinstance(self.retry, Unset):
            retry = UNSET
        elif isinstance(self.retry, Retry):
            retry = self.retry.to_dict()
        else:
            retry = self.retry

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "attempt": attempt,
                "first_submitted_at": first_submitted_at,
            }
        )
        if callback_url is not UNSET:
            field_dict["callback_url"] = callback_url
        if max_age_s is not UNSET:
            field_dict["max_age_s"] = max_age_s
        if on_failure is not UNSET:
            field_dict["on_failure"] = on_failure
        if private_ok is not UNSET:
            field_dict["private_ok"] = private_ok
        if retry is not UNSET:
            field_dict["retry"] = retry

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.on_failure import OnFailure
        from ..models.retry import Retry

        d = dict(src_dict)
        attempt = d.pop("attempt")

        first_submitted_at = datetime.datetime.fromisoformat(
            d.pop("first_submitted_at")
        )

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

        private_ok = d.pop("private_ok", UNSET)

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

        async_policy = cls(
            attempt=attempt,
            first_submitted_at=first_submitted_at,
            callback_url=callback_url,
            max_age_s=max_age_s,
            on_failure=on_failure,
            private_ok=private_ok,
            retry=retry,
        )

        async_policy.additional_properties = d
        return async_policy

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

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="ReceiveBody")


@_attrs_define
class ReceiveBody:
    """`POST /v1/queues/{name}/receive`.

    Attributes:
        max_ (int | Unset): Messages at most (1-100; 1).
        visibility_timeout_s (int | None | Unset): Seconds these deliveries stay hidden (the queue's own by default).
        wait_s (int | Unset): Seconds to wait for a first message when none is there (0-20; 0).
    """

    max_: int | Unset = UNSET
    visibility_timeout_s: int | None | Unset = UNSET
    wait_s: int | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        max_ = self.max_

        visibility_timeout_s: int | None | Unset
        if isinstance(self.visibility_timeout_s, Unset):
            visibility_timeout_s = UNSET
        else:
            visibility_timeout_s = self.visibility_timeout_s

        wait_s = self.wait_s

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if max_ is not UNSET:
            field_dict["max"] = max_
        if visibility_timeout_s is not UNSET:
            field_dict["visibility_timeout_s"] = visibility_timeout_s
        if wait_s is not UNSET:
            field_dict["wait_s"] = wait_s

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        max_ = d.pop("max", UNSET)

        def _parse_visibility_timeout_s(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        visibility_timeout_s = _parse_visibility_timeout_s(
            d.pop("visibility_timeout_s", UNSET)
        )

        wait_s = d.pop("wait_s", UNSET)

        receive_body = cls(
            max_=max_,
            visibility_timeout_s=visibility_timeout_s,
            wait_s=wait_s,
        )

        return receive_body

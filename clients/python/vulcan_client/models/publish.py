from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="Publish")


@_attrs_define
class Publish:
    """`POST /v1/topics/{name}/publish`.

    Attributes:
        body (Any): Any JSON.
        dedup_id (None | str | Unset): Published again with this id within 5 minutes, no queue stores it twice.
    """

    body: Any
    dedup_id: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        body = self.body

        dedup_id: None | str | Unset
        if isinstance(self.dedup_id, Unset):
            dedup_id = UNSET
        else:
            dedup_id = self.dedup_id

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "body": body,
            }
        )
        if dedup_id is not UNSET:
            field_dict["dedup_id"] = dedup_id

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        body = d.pop("body")

        def _parse_dedup_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        dedup_id = _parse_dedup_id(d.pop("dedup_id", UNSET))

        publish = cls(
            body=body,
            dedup_id=dedup_id,
        )

        return publish

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

T = TypeVar("T", bound="AckBody")


@_attrs_define
class AckBody:
    """`POST /v1/queues/{name}/ack`.

    Attributes:
        receipts (list[str]): 1-100 receipts.
    """

    receipts: list[str]

    def to_dict(self) -> dict[str, Any]:
        receipts = self.receipts

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "receipts": receipts,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        receipts = cast(list[str], d.pop("receipts"))

        ack_body = cls(
            receipts=receipts,
        )

        return ack_body

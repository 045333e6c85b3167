from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="BytesInput")


@_attrs_define
class BytesInput:
    """Bytes to write (base64), then stdin closed if `close`.

    Attributes:
        data_base64 (str):
        close (bool | Unset):
    """

    data_base64: str
    close: bool | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        data_base64 = self.data_base64

        close = self.close

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "data_base64": data_base64,
            }
        )
        if close is not UNSET:
            field_dict["close"] = close

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        data_base64 = d.pop("data_base64")

        close = d.pop("close", UNSET)

        bytes_input = cls(
            data_base64=data_base64,
            close=close,
        )

        return bytes_input

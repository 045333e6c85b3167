from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="TextInput")


@_attrs_define
class TextInput:
    """Text to write, then stdin closed if `close`.

    Attributes:
        data (str):
        close (bool | Unset):
    """

    data: str
    close: bool | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        data = self.data

        close = self.close

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "data": data,
            }
        )
        if close is not UNSET:
            field_dict["close"] = close

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        data = d.pop("data")

        close = d.pop("close", UNSET)

        text_input = cls(
            data=data,
            close=close,
        )

        return text_input

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="CloseInput")


@_attrs_define
class CloseInput:
    """Nothing to write: stdin closed if `close` (else nothing happens).

    Attributes:
        close (bool | Unset):
    """

    close: bool | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        close = self.close

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if close is not UNSET:
            field_dict["close"] = close

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        close = d.pop("close", UNSET)

        close_input = cls(
            close=close,
        )

        return close_input

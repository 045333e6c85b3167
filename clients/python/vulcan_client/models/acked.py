from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="Acked")


@_attrs_define
class Acked:
    """Which receipts acknowledged their message.

    Attributes:
        acked (list[str]):
        stale (list[str]): Receipts that no longer name their message's latest delivery (acknowledged, given
            back or delivered again since): nothing was done for them.
    """

    acked: list[str]
    stale: list[str]
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        acked = self.acked

        stale = self.stale

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "acked": acked,
                "stale": stale,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        acked = cast(list[str], d.pop("acked"))

        stale = cast(list[str], d.pop("stale"))

        acked = cls(
            acked=acked,
            stale=stale,
        )

        acked.additional_properties = d
        return acked

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

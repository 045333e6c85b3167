from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="SubscribeFunction")


@_attrs_define
class SubscribeFunction:
    """A function of the tenant's is invoked with each message.

    Attributes:
        function (str):
    """

    function: str

    def to_dict(self) -> dict[str, Any]:
        function = self.function

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "function": function,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        function = d.pop("function")

        subscribe_function = cls(
            function=function,
        )

        return subscribe_function

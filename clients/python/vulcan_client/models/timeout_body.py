from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="TimeoutBody")


@_attrs_define
class TimeoutBody:
    """
    Attributes:
        timeout_s (int): Seconds from now until its deadline.
    """

    timeout_s: int

    def to_dict(self) -> dict[str, Any]:
        timeout_s = self.timeout_s

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "timeout_s": timeout_s,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        timeout_s = d.pop("timeout_s")

        timeout_body = cls(
            timeout_s=timeout_s,
        )

        return timeout_body

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="CreateVolume")


@_attrs_define
class CreateVolume:
    """`POST /v1/volumes`.

    Attributes:
        name (str): 1-63 of a-z, 0-9, `-` and `_`, unique per tenant.
        size_mb (int): What its files may fill, 16 MiB up to a sandbox's largest disk (64 GiB).
    """

    name: str
    size_mb: int

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        size_mb = self.size_mb

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "size_mb": size_mb,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        name = d.pop("name")

        size_mb = d.pop("size_mb")

        create_volume = cls(
            name=name,
            size_mb=size_mb,
        )

        return create_volume

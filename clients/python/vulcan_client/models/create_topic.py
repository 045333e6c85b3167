from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="CreateTopic")


@_attrs_define
class CreateTopic:
    """`POST /v1/topics`.

    Attributes:
        name (str): 1-63 of a-z, 0-9, `-` and `_`, unique per tenant.
    """

    name: str

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        name = d.pop("name")

        create_topic = cls(
            name=name,
        )

        return create_topic

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="SubscribeQueue")


@_attrs_define
class SubscribeQueue:
    """A queue of the tenant's gets each message.

    Attributes:
        queue (str):
    """

    queue: str

    def to_dict(self) -> dict[str, Any]:
        queue = self.queue

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "queue": queue,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        queue = d.pop("queue")

        subscribe_queue = cls(
            queue=queue,
        )

        return subscribe_queue

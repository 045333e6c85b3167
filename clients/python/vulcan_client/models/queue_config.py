from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="QueueConfig")


@_attrs_define
class QueueConfig:
    """What can be set on a queue.

    Attributes:
        max_message_bytes (int): The largest message body (its JSON), 1 byte to 1 MiB.
        max_receives (int): Receives before a message moves to the dead-letter queue, 1-1000.
        retention_s (int): Seconds a message is kept, acknowledged or not, 60-1209600 (14 days).
        visibility_timeout_s (int): Seconds a received message stays hidden from other consumers, 1-43200.
        dead_letter_queue (None | str | Unset): The queue (of the same tenant) that takes messages past `max_receives`.
    """

    max_message_bytes: int
    max_receives: int
    retention_s: int
    visibility_timeout_s: int
    dead_letter_queue: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        max_message_bytes = self.max_message_bytes

        max_receives = self.max_receives

        retention_s = self.retention_s

        visibility_timeout_s = self.visibility_timeout_s

        dead_letter_queue: None | str | Unset
        if isinstance(self.dead_letter_queue, Unset):
            dead_letter_queue = UNSET
        else:
            dead_letter_queue = self.dead_letter_queue

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "max_message_bytes": max_message_bytes,
                "max_receives": max_receives,
                "retention_s": retention_s,
                "visibility_timeout_s": visibility_timeout_s,
            }
        )
        if dead_letter_queue is not UNSET:
            field_dict["dead_letter_queue"] = dead_letter_queue

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        max_message_bytes = d.pop("max_message_bytes")

        max_receives = d.pop("max_receives")

        retention_s = d.pop("retention_s")

        visibility_timeout_s = d.pop("visibility_timeout_s")

        def _parse_dead_letter_queue(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        dead_letter_queue = _parse_dead_letter_queue(d.pop("dead_letter_queue", UNSET))

        queue_config = cls(
            max_message_bytes=max_message_bytes,
            max_receives=max_receives,
            retention_s=retention_s,
            visibility_timeout_s=visibility_timeout_s,
            dead_letter_queue=dead_letter_queue,
        )

        queue_config.additional_properties = d
        return queue_config

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

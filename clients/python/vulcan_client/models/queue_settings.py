from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="QueueSettings")


@_attrs_define
class QueueSettings:
    """A queue's name and what may be set on it; each field left out keeps its default (on
    `POST`) or its value (on `PUT` of a queue that exists).

        Attributes:
            dead_letter_queue (None | str | Unset): A queue of the same tenant that takes messages past `max_receives`
                (none: they
                are delivered again until their retention ends). `null` on `PUT` removes it.
            max_message_bytes (int | None | Unset): The largest message body, as JSON text (1-1048576; 262144).
            max_receives (int | None | Unset): Receives before a message moves to the dead-letter queue (1-1000; 5).
            retention_s (int | None | Unset): Seconds a message is kept (60-1209600; 4 days).
            visibility_timeout_s (int | None | Unset): Seconds a received message stays hidden from other consumers
                (1-43200; 30).
    """

    dead_letter_queue: None | str | Unset = UNSET
    max_message_bytes: int | None | Unset = UNSET
    max_receives: int | None | Unset = UNSET
    retention_s: int | None | Unset = UNSET
    visibility_timeout_s: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        dead_letter_queue: None | str | Unset
        if isinstance(self.dead_letter_queue, Unset):
            dead_letter_queue = UNSET
        else:
            dead_letter_queue = self.dead_letter_queue

        max_message_bytes: int | None | Unset
        if isinstance(self.max_message_bytes, Unset):
            max_message_bytes = UNSET
        else:
            max_message_bytes = self.max_message_bytes

        max_receives: int | None | Unset
        if isinstance(self.max_receives, Unset):
            max_receives = UNSET
        else:
            max_receives = self.max_receives

        retention_s: int | None | Unset
        if isinstance(self.retention_s, Unset):
            retention_s = UNSET
        else:
            retention_s = self.retention_s

        visibility_timeout_s: int | None | Unset
        if isinstance(self.visibility_timeout_s, Unset):
            visibility_timeout_s = UNSET
        else:
            visibility_timeout_s = self.visibility_timeout_s

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if dead_letter_queue is not UNSET:
            field_dict["dead_letter_queue"] = dead_letter_queue
        if max_message_bytes is not UNSET:
            field_dict["max_message_bytes"] = max_message_bytes
        if max_receives is not UNSET:
            field_dict["max_receives"] = max_receives
        if retention_s is not UNSET:
            field_dict["retention_s"] = retention_s
        if visibility_timeout_s is not UNSET:
            field_dict["visibility_timeout_s"] = visibility_timeout_s

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)

        def _parse_dead_letter_queue(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        dead_letter_queue = _parse_dead_letter_queue(d.pop("dead_letter_queue", UNSET))

        def _parse_max_message_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_message_bytes = _parse_max_message_bytes(d.pop("max_message_bytes", UNSET))

        def _parse_max_receives(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_receives = _parse_max_receives(d.pop("max_receives", UNSET))

        def _parse_retention_s(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        retention_s = _parse_retention_s(d.pop("retention_s", UNSET))

        def _parse_visibility_timeout_s(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        visibility_timeout_s = _parse_visibility_timeout_s(
            d.pop("visibility_timeout_s", UNSET)
        )

        queue_settings = cls(
            dead_letter_queue=dead_letter_queue,
            max_message_bytes=max_message_bytes,
            max_receives=max_receives,
            retention_s=retention_s,
            visibility_timeout_s=visibility_timeout_s,
        )

        return queue_settings

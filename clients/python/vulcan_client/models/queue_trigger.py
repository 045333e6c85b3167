from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="QueueTrigger")


@_attrs_define
class QueueTrigger:
    """A queue of the function's tenant that feeds it: each batch of messages is one
    invocation, with `{"queue", "messages": [{id, body, receive_count, sent_at}]}` as its
    input. A batch whose invocation fails or times out is given back (retried with
    exponential backoff and jitter); one that completes is acknowledged, but for the
    message ids its output lists as `{"failed": [...]}`, which are given back alone.

        Attributes:
            queue (str):
            batch_size (int | Unset): Messages per invocation at most (1-100; 1).
            max_concurrency (int | Unset): Invocations of this trigger at once, per node (1-64; 1).
            max_wait_ms (int | Unset): Milliseconds to wait for a batch to fill once it has a first message (0-10000; 0).
    """

    queue: str
    batch_size: int | Unset = UNSET
    max_concurrency: int | Unset = UNSET
    max_wait_ms: int | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        queue = self.queue

        batch_size = self.batch_size

        max_concurrency = self.max_concurrency

        max_wait_ms = self.max_wait_ms

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "queue": queue,
            }
        )
        if batch_size is not UNSET:
            field_dict["batch_size"] = batch_size
        if max_concurrency is not UNSET:
            field_dict["max_concurrency"] = max_concurrency
        if max_wait_ms is not UNSET:
            field_dict["max_wait_ms"] = max_wait_ms

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        queue = d.pop("queue")

        batch_size = d.pop("batch_size", UNSET)

        max_concurrency = d.pop("max_concurrency", UNSET)

        max_wait_ms = d.pop("max_wait_ms", UNSET)

        queue_trigger = cls(
            queue=queue,
            batch_size=batch_size,
            max_concurrency=max_concurrency,
            max_wait_ms=max_wait_ms,
        )

        queue_trigger.additional_properties = d
        return queue_trigger

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

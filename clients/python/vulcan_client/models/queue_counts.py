from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="QueueCounts")


@_attrs_define
class QueueCounts:
    """What is in a queue now, and what it has done.

    Attributes:
        dead_lettered (int): Messages moved to the dead-letter queue so far.
        delayed (int): Messages sent with a delay, or given back with one, not visible yet.
        deliveries (int): Deliveries so far (a message received twice counts twice).
        depth (int): Messages a consumer can receive now.
        in_flight (int): Messages received and neither acknowledged nor given back yet.
        redeliveries (int): Of those, deliveries of a message received before.
        oldest_age_s (float | None | Unset): Seconds since the oldest message still kept was sent.
    """

    dead_lettered: int
    delayed: int
    deliveries: int
    depth: int
    in_flight: int
    redeliveries: int
    oldest_age_s: float | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        dead_lettered = self.dead_lettered

        delayed = self.delayed

        deliveries = self.deliveries

        depth = self.depth

        in_flight = self.in_flight

        redeliveries = self.redeliveries

        oldest_age_s: float | None | Unset
        if isinstance(self.oldest_age_s, Unset):
            oldest_age_s = UNSET
        else:
            oldest_age_s = self.oldest_age_s

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "dead_lettered": dead_lettered,
                "delayed": delayed,
                "deliveries": deliveries,
                "depth": depth,
                "in_flight": in_flight,
                "redeliveries": redeliveries,
            }
        )
        if oldest_age_s is not UNSET:
            field_dict["oldest_age_s"] = oldest_age_s

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        dead_lettered = d.pop("dead_lettered")

        delayed = d.pop("delayed")

        deliveries = d.pop("deliveries")

        depth = d.pop("depth")

        in_flight = d.pop("in_flight")

        redeliveries = d.pop("redeliveries")

        def _parse_oldest_age_s(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        oldest_age_s = _parse_oldest_age_s(d.pop("oldest_age_s", UNSET))

        queue_counts = cls(
            dead_lettered=dead_lettered,
            delayed=delayed,
            deliveries=deliveries,
            depth=depth,
            in_flight=in_flight,
            redeliveries=redeliveries,
            oldest_age_s=oldest_age_s,
        )

        queue_counts.additional_properties = d
        return queue_counts

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

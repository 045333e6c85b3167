from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.isolation import Isolation, check_isolation
from ..types import UNSET, Unset

T = TypeVar("T", bound="NodeBackend")


@_attrs_define
class NodeBackend:
    """What a node says of one of its backends.

    Attributes:
        available (bool):
        free_slots (int):
        name (Isolation): How a workload is isolated from the host. `Auto` only appears in requests: a stored
            workload always carries the isolation that was actually used.
        slots (int): Workloads it can run at once, and how many of those it could start now.
        details (Any | Unset):
        reason (None | str | Unset):
    """

    available: bool
    free_slots: int
    name: Isolation
    slots: int
    details: Any | Unset = UNSET
    reason: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        available = self.available

        free_slots = self.free_slots

        name: str = self.name

        slots = self.slots

        details = self.details

        reason: None | str | Unset
        if isinstance(self.reason, Unset):
            reason = UNSET
        else:
            reason = self.reason

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "available": available,
                "free_slots": free_slots,
                "name": name,
                "slots": slots,
            }
        )
        if details is not UNSET:
            field_dict["details"] = details
        if reason is not UNSET:
            field_dict["reason"] = reason

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        available = d.pop("available")

        free_slots = d.pop("free_slots")

        name = check_isolation(d.pop("name"))

        slots = d.pop("slots")

        details = d.pop("details", UNSET)

        def _parse_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reason = _parse_reason(d.pop("reason", UNSET))

        node_backend = cls(
            available=available,
            free_slots=free_slots,
            name=name,
            slots=slots,
            details=details,
            reason=reason,
        )

        node_backend.additional_properties = d
        return node_backend

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

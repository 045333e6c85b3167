from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="UsageSample")


@_attrs_define
class UsageSample:
    """What a sandbox used at one moment, and its CPU since the sample before.

    Attributes:
        at (datetime.datetime):
        cpu_ms (int):
        cpu_pct (float): CPU time over wall time since the sample before: 100 is one whole CPU.
        disk_bytes (int):
        memory_bytes (int):
    """

    at: datetime.datetime
    cpu_ms: int
    cpu_pct: float
    disk_bytes: int
    memory_bytes: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        at = self.at.isoformat()

        cpu_ms = self.cpu_ms

        cpu_pct = self.cpu_pct

        disk_bytes = self.disk_bytes

        memory_bytes = self.memory_bytes

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "at": at,
                "cpu_ms": cpu_ms,
                "cpu_pct": cpu_pct,
                "disk_bytes": disk_bytes,
                "memory_bytes": memory_bytes,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        at = datetime.datetime.fromisoformat(d.pop("at"))

        cpu_ms = d.pop("cpu_ms")

        cpu_pct = d.pop("cpu_pct")

        disk_bytes = d.pop("disk_bytes")

        memory_bytes = d.pop("memory_bytes")

        usage_sample = cls(
            at=at,
            cpu_ms=cpu_ms,
            cpu_pct=cpu_pct,
            disk_bytes=disk_bytes,
            memory_bytes=memory_bytes,
        )

        usage_sample.additional_properties = d
        return usage_sample

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

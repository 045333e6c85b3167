from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="SandboxResources")


@_attrs_define
class SandboxResources:
    """A sandbox's bounds: CPUs, memory, and the disk its writes may fill.

    Attributes:
        cpus (int):
        disk_mb (int):
        mem_mb (int):
    """

    cpus: int
    disk_mb: int
    mem_mb: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        cpus = self.cpus

        disk_mb = self.disk_mb

        mem_mb = self.mem_mb

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "cpus": cpus,
                "disk_mb": disk_mb,
                "mem_mb": mem_mb,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        cpus = d.pop("cpus")

        disk_mb = d.pop("disk_mb")

        mem_mb = d.pop("mem_mb")

        sandbox_resources = cls(
            cpus=cpus,
            disk_mb=disk_mb,
            mem_mb=mem_mb,
        )

        sandbox_resources.additional_properties = d
        return sandbox_resources

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

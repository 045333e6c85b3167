from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="Health")


@_attrs_define
class Health:
    """The server is up.

    Attributes:
        active_workloads (int):
        node_id (str):
        status (str): `ok`.
        uptime_s (int):
        version (str):
    """

    active_workloads: int
    node_id: str
    status: str
    uptime_s: int
    version: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        active_workloads = self.active_workloads

        node_id = self.node_id

        status = self.status

        uptime_s = self.uptime_s

        version = self.version

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "active_workloads": active_workloads,
                "node_id": node_id,
                "status": status,
                "uptime_s": uptime_s,
                "version": version,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        active_workloads = d.pop("active_workloads")

        node_id = d.pop("node_id")

        status = d.pop("status")

        uptime_s = d.pop("uptime_s")

        version = d.pop("version")

        health = cls(
            active_workloads=active_workloads,
            node_id=node_id,
            status=status,
            uptime_s=uptime_s,
            version=version,
        )

        health.additional_properties = d
        return health

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

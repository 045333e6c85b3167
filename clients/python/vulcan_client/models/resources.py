from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="Resources")


@_attrs_define
class Resources:
    """Resource limits of one workload, already validated against the server's limits.

    Attributes:
        cpus (int):
        mem_mb (int):
        timeout_s (int):
        net_mbps (int | None | Unset): A cap on the sandbox's network, each way, in megabits a second (with a network
            policy only).
    """

    cpus: int
    mem_mb: int
    timeout_s: int
    net_mbps: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        cpus = self.cpus

        mem_mb = self.mem_mb

        timeout_s = self.timeout_s

        net_mbps: int | None | Unset
        if isinstance(self.net_mbps, Unset):
            net_mbps = UNSET
        else:
            net_mbps = self.net_mbps

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "cpus": cpus,
                "mem_mb": mem_mb,
                "timeout_s": timeout_s,
            }
        )
        if net_mbps is not UNSET:
            field_dict["net_mbps"] = net_mbps

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        cpus = d.pop("cpus")

        mem_mb = d.pop("mem_mb")

        timeout_s = d.pop("timeout_s")

        def _parse_net_mbps(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        net_mbps = _parse_net_mbps(d.pop("net_mbps", UNSET))

        resources = cls(
            cpus=cpus,
            mem_mb=mem_mb,
            timeout_s=timeout_s,
            net_mbps=net_mbps,
        )

        resources.additional_properties = d
        return resources

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

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="ResourcesBody")


@_attrs_define
class ResourcesBody:
    """
    Attributes:
        cpus (int | None | Unset):
        mem_mb (int | None | Unset):
        net_mbps (int | None | Unset): A cap on the network, each way, in megabits a second (with `network` only).
        timeout_s (int | None | Unset):
    """

    cpus: int | None | Unset = UNSET
    mem_mb: int | None | Unset = UNSET
    net_mbps: int | None | Unset = UNSET
    timeout_s: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        cpus: int | None | Unset
        if isinstance(self.cpus, Unset):
            cpus = UNSET
        else:
            cpus = self.cpus

        mem_mb: int | None | Unset
        if isinstance(self.mem_mb, Unset):
            mem_mb = UNSET
        else:
            mem_mb = self.mem_mb

        net_mbps: int | None | Unset
        if isinstance(self.net_mbps, Unset):
            net_mbps = UNSET
        else:
            net_mbps = self.net_mbps

        timeout_s: int | None | Unset
        if isinstance(self.timeout_s, Unset):
            timeout_s = UNSET
        else:
            timeout_s = self.timeout_s

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if cpus is not UNSET:
            field_dict["cpus"] = cpus
        if mem_mb is not UNSET:
            field_dict["mem_mb"] = mem_mb
        if net_mbps is not UNSET:
            field_dict["net_mbps"] = net_mbps
        if timeout_s is not UNSET:
            field_dict["timeout_s"] = timeout_s

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)

        def _parse_cpus(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        cpus = _parse_cpus(d.pop("cpus", UNSET))

        def _parse_mem_mb(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        mem_mb = _parse_mem_mb(d.pop("mem_mb", UNSET))

        def _parse_net_mbps(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        net_mbps = _parse_net_mbps(d.pop("net_mbps", UNSET))

        def _parse_timeout_s(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        timeout_s = _parse_timeout_s(d.pop("timeout_s", UNSET))

        resources_body = cls(
            cpus=cpus,
            mem_mb=mem_mb,
            net_mbps=net_mbps,
            timeout_s=timeout_s,
        )

        return resources_body

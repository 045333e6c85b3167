from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="SandboxResourcesBody")


@_attrs_define
class SandboxResourcesBody:
    """
    Attributes:
        cpus (int | None | Unset):
        disk_mb (int | None | Unset): The disk its writes may fill (its whole root is writable).
        mem_mb (int | None | Unset):
    """

    cpus: int | None | Unset = UNSET
    disk_mb: int | None | Unset = UNSET
    mem_mb: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        cpus: int | None | Unset
        if isinstance(self.cpus, Unset):
            cpus = UNSET
        else:
            cpus = self.cpus

        disk_mb: int | None | Unset
        if isinstance(self.disk_mb, Unset):
            disk_mb = UNSET
        else:
            disk_mb = self.disk_mb

        mem_mb: int | None | Unset
        if isinstance(self.mem_mb, Unset):
            mem_mb = UNSET
        else:
            mem_mb = self.mem_mb

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if cpus is not UNSET:
            field_dict["cpus"] = cpus
        if disk_mb is not UNSET:
            field_dict["disk_mb"] = disk_mb
        if mem_mb is not UNSET:
            field_dict["mem_mb"] = mem_mb

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

        def _parse_disk_mb(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        disk_mb = _parse_disk_mb(d.pop("disk_mb", UNSET))

        def _parse_mem_mb(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        mem_mb = _parse_mem_mb(d.pop("mem_mb", UNSET))

        sandbox_resources_body = cls(
            cpus=cpus,
            disk_mb=disk_mb,
            mem_mb=mem_mb,
        )

        return sandbox_resources_body

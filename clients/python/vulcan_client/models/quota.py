from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="Quota")


@_attrs_define
class Quota:
    """A tenant's limits.

    Attributes:
        max_concurrent (int): Workloads pending or running at once.
        max_cpus (int): CPUs of its pending and running workloads together.
        max_mem_mb (int): Memory (MiB) of its pending and running workloads together.
        per_minute (int): Submissions accepted per rolling minute.
        egress_allow (list[str] | Unset): What its workloads may reach when the server's egress is `allow-listed` (and
            the
            only way to open a never-reachable range such as a private network to it).
        max_schedules (int | None | Unset): Schedules it may have (`null`: the server's default).
        min_schedule_interval_s (int | None | Unset): The shortest time between two ticks of one of its schedules, in
            seconds (`null`:
            the server's default).
    """

    max_concurrent: int
    max_cpus: int
    max_mem_mb: int
    per_minute: int
    egress_allow: list[str] | Unset = UNSET
    max_schedules: int | None | Unset = UNSET
    min_schedule_interval_s: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        max_concurrent = self.max_concurrent

        max_cpus = self.max_cpus

        max_mem_mb = self.max_mem_mb

        per_minute = self.per_minute

        egress_allow: list[str] | Unset = UNSET
        if not isinstance(self.egress_allow, Unset):
            egress_allow = self.egress_allow

        max_schedules: int | None | Unset
        if isinstance(self.max_schedules, Unset):
            max_schedules = UNSET
        else:
            max_schedules = self.max_schedules

        min_schedule_interval_s: int | None | Unset
        if isinstance(self.min_schedule_interval_s, Unset):
            min_schedule_interval_s = UNSET
        else:
            min_schedule_interval_s = self.min_schedule_interval_s

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "max_concurrent": max_concurrent,
                "max_cpus": max_cpus,
                "max_mem_mb": max_mem_mb,
                "per_minute": per_minute,
            }
        )
        if egress_allow is not UNSET:
            field_dict["egress_allow"] = egress_allow
        if max_schedules is not UNSET:
            field_dict["max_schedules"] = max_schedules
        if min_schedule_interval_s is not UNSET:
            field_dict["min_schedule_interval_s"] = min_schedule_interval_s

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        max_concurrent = d.pop("max_concurrent")

        max_cpus = d.pop("max_cpus")

        max_mem_mb = d.pop("max_mem_mb")

        per_minute = d.pop("per_minute")

        egress_allow = cast(list[str], d.pop("egress_allow", UNSET))

        def _parse_max_schedules(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_schedules = _parse_max_schedules(d.pop("max_schedules", UNSET))

        def _parse_min_schedule_interval_s(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        min_schedule_interval_s = _parse_min_schedule_interval_s(
            d.pop("min_schedule_interval_s", UNSET)
        )

        quota = cls(
            max_concurrent=max_concurrent,
            max_cpus=max_cpus,
            max_mem_mb=max_mem_mb,
            per_minute=per_minute,
            egress_allow=egress_allow,
            max_schedules=max_schedules,
            min_schedule_interval_s=min_schedule_interval_s,
        )

        quota.additional_properties = d
        return quota

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

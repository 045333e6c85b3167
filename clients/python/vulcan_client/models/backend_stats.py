from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="BackendStats")


@_attrs_define
class BackendStats:
    """Duration figures of the finished workloads of one backend.

    Attributes:
        avg_duration_ms (float):
        finished (int):
        p50_duration_ms (float):
        p95_duration_ms (float):
        avg_cpu_time_ms (float | None | Unset):
        avg_peak_memory_bytes (float | None | Unset):
        measured_runs (int | Unset): Runs whose usage was measured, and their averages.
    """

    avg_duration_ms: float
    finished: int
    p50_duration_ms: float
    p95_duration_ms: float
    avg_cpu_time_ms: float | None | Unset = UNSET
    avg_peak_memory_bytes: float | None | Unset = UNSET
    measured_runs: int | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        avg_duration_ms = self.avg_duration_ms

        finished = self.finished

        p50_duration_ms = self.p50_duration_ms

        p95_duration_ms = self.p95_duration_ms

        avg_cpu_time_ms: float | None | Unset
        if isinstance(self.avg_cpu_time_ms, Unset):
            avg_cpu_time_ms = UNSET
        else:
            avg_cpu_time_ms = self.avg_cpu_time_ms

        avg_peak_memory_bytes: float | None | Unset
        if isinstance(self.avg_peak_memory_bytes, Unset):
            avg_peak_memory_bytes = UNSET
        else:
            avg_peak_memory_bytes = self.avg_peak_memory_bytes

        measured_runs = self.measured_runs

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "avg_duration_ms": avg_duration_ms,
                "finished": finished,
                "p50_duration_ms": p50_duration_ms,
                "p95_duration_ms": p95_duration_ms,
            }
        )
        if avg_cpu_time_ms is not UNSET:
            field_dict["avg_cpu_time_ms"] = avg_cpu_time_ms
        if avg_peak_memory_bytes is not UNSET:
            field_dict["avg_peak_memory_bytes"] = avg_peak_memory_bytes
        if measured_runs is not UNSET:
            field_dict["measured_runs"] = measured_runs

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        avg_duration_ms = d.pop("avg_duration_ms")

        finished = d.pop("finished")

        p50_duration_ms = d.pop("p50_duration_ms")

        p95_duration_ms = d.pop("p95_duration_ms")

        def _parse_avg_cpu_time_ms(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        avg_cpu_time_ms = _parse_avg_cpu_time_ms(d.pop("avg_cpu_time_ms", UNSET))

        def _parse_avg_peak_memory_bytes(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        avg_peak_memory_bytes = _parse_avg_peak_memory_bytes(
            d.pop("avg_peak_memory_bytes", UNSET)
        )

        measured_runs = d.pop("measured_runs", UNSET)

        backend_stats = cls(
            avg_duration_ms=avg_duration_ms,
            finished=finished,
            p50_duration_ms=p50_duration_ms,
            p95_duration_ms=p95_duration_ms,
            avg_cpu_time_ms=avg_cpu_time_ms,
            avg_peak_memory_bytes=avg_peak_memory_bytes,
            measured_runs=measured_runs,
        )

        backend_stats.additional_properties = d
        return backend_stats

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

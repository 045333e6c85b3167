from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.isolation import Isolation, check_isolation
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.backend_figures_start_ms import BackendFiguresStartMs


T = TypeVar("T", bound="BackendFigures")


@_attrs_define
class BackendFigures:
    """Figures of one backend.

    Attributes:
        backend (Isolation): How a workload is isolated from the host. `Auto` only appears in requests: a stored
            workload always carries the isolation that was actually used.
        failed_runs (int):
        runs (int):
        workload (str): What ran.
        cold_start_ms (float | None | Unset):
        first_error (None | str | Unset):
        memory_per_workload_mb (float | None | Unset):
        mode (str | Unset): `workload` (one-shot runs) or `function` (invocations of a deployed function).
        p50_ms (float | None | Unset):
        p95_ms (float | None | Unset):
        skipped (None | str | Unset): Why the backend was not measured, if it was not.
        start_ms (BackendFiguresStartMs | Unset): How long the backend took to ready a sandbox, by how (microvm: `boot`,
            `restore`),
            median ms over its recent starts, as it reported them after this backend's runs.
        throughput_per_s (float | None | Unset):
        warm_start_ms (float | None | Unset):
    """

    backend: Isolation
    failed_runs: int
    runs: int
    workload: str
    cold_start_ms: float | None | Unset = UNSET
    first_error: None | str | Unset = UNSET
    memory_per_workload_mb: float | None | Unset = UNSET
    mode: str | Unset = UNSET
    p50_ms: float | None | Unset = UNSET
    p95_ms: float | None | Unset = UNSET
    skipped: None | str | Unset = UNSET
    start_ms: BackendFiguresStartMs | Unset = UNSET
    throughput_per_s: float | None | Unset = UNSET
    warm_start_ms: float | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        backend: str = self.backend

        failed_runs = self.failed_runs

        runs = self.runs

        workload = self.workload

        cold_start_ms: float | None | Unset
        if isinstance(self.cold_start_ms, Unset):
            cold_start_ms = UNSET
        else:
            cold_start_ms = self.cold_start_ms

        first_error: None | str | Unset
        if isinstance(self.first_error, Unset):
            first_error = UNSET
        else:
            first_error = self.first_error

        memory_per_workload_mb: float | None | Unset
        if isinstance(self.memory_per_workload_mb, Unset):
            memory_per_workload_mb = UNSET
        else:
            memory_per_workload_mb = self.memory_per_workload_mb

        mode = self.mode

        p50_ms: float | None | Unset
        if isinstance(self.p50_ms, Unset):
            p50_ms = UNSET
        else:
            p50_ms = self.p50_ms

        p95_ms: float | None | Unset
        if isinstance(self.p95_ms, Unset):
            p95_ms = UNSET
        else:
            p95_ms = self.p95_ms

        skipped: None | str | Unset
        if isinstance(self.skipped, Unset):
            skipped = UNSET
        else:
            skipped = self.skipped

        start_ms: dict[str, Any] | Unset = UNSET
        if not isinstance(self.start_ms, Unset):
            start_ms = self.start_ms.to_dict()

        throughput_per_s: float | None | Unset
        if isinstance(self.throughput_per_s, Unset):
            throughput_per_s = UNSET
        else:
            throughput_per_s = self.throughput_per_s

        warm_start_ms: float | None | Unset
        if isinstance(self.warm_start_ms, Unset):
            warm_start_ms = UNSET
        else:
            warm_start_ms = self.warm_start_ms

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "backend": backend,
                "failed_runs": failed_runs,
                "runs": runs,
                "workload": workload,
            }
        )
        if cold_start_ms is not UNSET:
            field_dict["cold_start_ms"] = cold_start_ms
        if first_error is not UNSET:
            field_dict["first_error"] = first_error
        if memory_per_workload_mb is not UNSET:
            field_dict["memory_per_workload_mb"] = memory_per_workload_mb
        if mode is not UNSET:
            field_dict["mode"] = mode
        if p50_ms is not UNSET:
            field_dict["p50_ms"] = p50_ms
        if p95_ms is not UNSET:
            field_dict["p95_ms"] = p95_ms
        if skipped is not UNSET:
            field_dict["skipped"] = skipped
        if start_ms is not UNSET:
            field_dict["start_ms"] = start_ms
        if throughput_per_s is not UNSET:
            field_dict["throughput_per_s"] = throughput_per_s
        if warm_start_ms is not UNSET:
            field_dict["warm_start_ms"] = warm_start_ms

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.backend_figures_start_ms import BackendFiguresStartMs

        d = dict(src_dict)
        backend = check_isolation(d.pop("backend"))

        failed_runs = d.pop("failed_runs")

        runs = d.pop("runs")

        workload = d.pop("workload")

        def _parse_cold_start_ms(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        cold_start_ms = _parse_cold_start_ms(d.pop("cold_start_ms", UNSET))

        def _parse_first_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        first_error = _parse_first_error(d.pop("first_error", UNSET))

        def _parse_memory_per_workload_mb(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        memory_per_workload_mb = _parse_memory_per_workload_mb(
            d.pop("memory_per_workload_mb", UNSET)
        )

        mode = d.pop("mode", UNSET)

        def _parse_p50_ms(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        p50_ms = _parse_p50_ms(d.pop("p50_ms", UNSET))

        def _parse_p95_ms(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        p95_ms = _parse_p95_ms(d.pop("p95_ms", UNSET))

        def _parse_skipped(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        skipped = _parse_skipped(d.pop("skipped", UNSET))

        _start_ms = d.pop("start_ms", UNSET)
        start_ms: BackendFiguresStartMs | Unset
        if isinstance(_start_ms, Unset):
            start_ms = UNSET
        else:
            start_ms = BackendFiguresStartMs.from_dict(_start_ms)

        def _parse_throughput_per_s(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        throughput_per_s = _parse_throughput_per_s(d.pop("throughput_per_s", UNSET))

        def _parse_warm_start_ms(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        warm_start_ms = _parse_warm_start_ms(d.pop("warm_start_ms", UNSET))

        backend_figures = cls(
            backend=backend,
            failed_runs=failed_runs,
            runs=runs,
            workload=workload,
            cold_start_ms=cold_start_ms,
            first_error=first_error,
            memory_per_workload_mb=memory_per_workload_mb,
            mode=mode,
            p50_ms=p50_ms,
            p95_ms=p95_ms,
            skipped=skipped,
            start_ms=start_ms,
            throughput_per_s=throughput_per_s,
            warm_start_ms=warm_start_ms,
        )

        backend_figures.additional_properties = d
        return backend_figures

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

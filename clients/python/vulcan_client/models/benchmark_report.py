from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.backend_figures import BackendFigures
    from ..models.benchmark_request import BenchmarkRequest
    from ..models.progress import Progress


T = TypeVar("T", bound="BenchmarkReport")


@_attrs_define
class BenchmarkReport:
    """A benchmark, running or finished.

    Attributes:
        cpus (int):
        created_at (datetime.datetime):
        id (str):
        node_id (str):
        progress (Progress):
        request (BenchmarkRequest): `POST /v1/benchmarks`.
        results (list[BackendFigures]):
        status (str): `running`, `completed` or `failed`.
        error (None | str | Unset):
        finished_at (datetime.datetime | None | Unset):
    """

    cpus: int
    created_at: datetime.datetime
    id: str
    node_id: str
    progress: Progress
    request: BenchmarkRequest
    results: list[BackendFigures]
    status: str
    error: None | str | Unset = UNSET
    finished_at: datetime.datetime | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        cpus = self.cpus

        created_at = self.created_at.isoformat()

        id = self.id

        node_id = self.node_id

        progress = self.progress.to_dict()

        request = self.request.to_dict()

        results = []
        for results_item_data in self.results:
            results_item = results_item_data.to_dict()
            results.append(results_item)

        status = self.status

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        finished_at: None | str | Unset
        if isinstance(self.finished_at, Unset):
            finished_at = UNSET
        elif isinstance(self.finished_at, datetime.datetime):
            finished_at = self.finished_at.isoformat()
        else:
            finished_at = self.finished_at

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "cpus": cpus,
                "created_at": created_at,
                "id": id,
                "node_id": node_id,
                "progress": progress,
                "request": request,
                "results": results,
                "status": status,
            }
        )
        if error is not UNSET:
            field_dict["error"] = error
        if finished_at is not UNSET:
            field_dict["finished_at"] = finished_at

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.backend_figures import BackendFigures
        from ..models.benchmark_request import BenchmarkRequest
        from ..models.progress import Progress

        d = dict(src_dict)
        cpus = d.pop("cpus")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        id = d.pop("id")

        node_id = d.pop("node_id")

        progress = Progress.from_dict(d.pop("progress"))

        request = BenchmarkRequest.from_dict(d.pop("request"))

        results = []
        _results = d.pop("results")
        for results_item_data in _results:
            results_item = BackendFigures.from_dict(results_item_data)

            results.append(results_item)

        status = d.pop("status")

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        def _parse_finished_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                finished_at_type_0 = datetime.datetime.fromisoformat(data)

                return finished_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        finished_at = _parse_finished_at(d.pop("finished_at", UNSET))

        benchmark_report = cls(
            cpus=cpus,
            created_at=created_at,
            id=id,
            node_id=node_id,
            progress=progress,
            request=request,
            results=results,
            status=status,
            error=error,
            finished_at=finished_at,
        )

        benchmark_report.additional_properties = d
        return benchmark_report

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

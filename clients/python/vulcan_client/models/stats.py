from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.stats_backends import StatsBackends
    from ..models.stats_by_isolation import StatsByIsolation
    from ..models.stats_by_status import StatsByStatus


T = TypeVar("T", bound="Stats")


@_attrs_define
class Stats:
    """`GET /v1/stats`.

    Attributes:
        avg_duration_ms (float):
        backends (StatsBackends):
        by_isolation (StatsByIsolation):
        by_status (StatsByStatus):
        total (int):
    """

    avg_duration_ms: float
    backends: StatsBackends
    by_isolation: StatsByIsolation
    by_status: StatsByStatus
    total: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        avg_duration_ms = self.avg_duration_ms

        backends = self.backends.to_dict()

        by_isolation = self.by_isolation.to_dict()

        by_status = self.by_status.to_dict()

        total = self.total

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "avg_duration_ms": avg_duration_ms,
                "backends": backends,
                "by_isolation": by_isolation,
                "by_status": by_status,
                "total": total,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.stats_backends import StatsBackends
        from ..models.stats_by_isolation import StatsByIsolation
        from ..models.stats_by_status import StatsByStatus

        d = dict(src_dict)
        avg_duration_ms = d.pop("avg_duration_ms")

        backends = StatsBackends.from_dict(d.pop("backends"))

        by_isolation = StatsByIsolation.from_dict(d.pop("by_isolation"))

        by_status = StatsByStatus.from_dict(d.pop("by_status"))

        total = d.pop("total")

        stats = cls(
            avg_duration_ms=avg_duration_ms,
            backends=backends,
            by_isolation=by_isolation,
            by_status=by_status,
            total=total,
        )

        stats.additional_properties = d
        return stats

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

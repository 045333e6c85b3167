from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.usage_sample import UsageSample


T = TypeVar("T", bound="SandboxMetrics")


@_attrs_define
class SandboxMetrics:
    """What a sandbox uses now, and what it used over the last hour (oldest first).

    Attributes:
        cpu_ms (int):
        disk_bytes (int):
        memory_bytes (int):
        samples (list[UsageSample]): One sample every few seconds while it runs (none while it is paused).
    """

    cpu_ms: int
    disk_bytes: int
    memory_bytes: int
    samples: list[UsageSample]
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        cpu_ms = self.cpu_ms

        disk_bytes = self.disk_bytes

        memory_bytes = self.memory_bytes

        samples = []
        for samples_item_data in self.samples:
            samples_item = samples_item_data.to_dict()
            samples.append(samples_item)

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "cpu_ms": cpu_ms,
                "disk_bytes": disk_bytes,
                "memory_bytes": memory_bytes,
                "samples": samples,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.usage_sample import UsageSample

        d = dict(src_dict)
        cpu_ms = d.pop("cpu_ms")

        disk_bytes = d.pop("disk_bytes")

        memory_bytes = d.pop("memory_bytes")

        samples = []
        _samples = d.pop("samples")
        for samples_item_data in _samples:
            samples_item = UsageSample.from_dict(samples_item_data)

            samples.append(samples_item)

        sandbox_metrics = cls(
            cpu_ms=cpu_ms,
            disk_bytes=disk_bytes,
            memory_bytes=memory_bytes,
            samples=samples,
        )

        sandbox_metrics.additional_properties = d
        return sandbox_metrics

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

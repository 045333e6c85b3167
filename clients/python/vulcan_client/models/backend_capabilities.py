from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.isolation import Isolation, check_isolation
from ..models.runtime import Runtime, check_runtime

T = TypeVar("T", bound="BackendCapabilities")


@_attrs_define
class BackendCapabilities:
    """What a backend can run.

    Attributes:
        max_concurrency (int):
        name (str):
        supported_isolations (list[Isolation]):
        supported_runtimes (list[Runtime]):
    """

    max_concurrency: int
    name: str
    supported_isolations: list[Isolation]
    supported_runtimes: list[Runtime]
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        max_concurrency = self.max_concurrency

        name = self.name

        supported_isolations = []
        for supported_isolations_item_data in self.supported_isolations:
            supported_isolations_item: str = supported_isolations_item_data
            supported_isolations.append(supported_isolations_item)

        supported_runtimes = []
        for supported_runtimes_item_data in self.supported_runtimes:
            supported_runtimes_item: str = supported_runtimes_item_data
            supported_runtimes.append(supported_runtimes_item)

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "max_concurrency": max_concurrency,
                "name": name,
                "supported_isolations": supported_isolations,
                "supported_runtimes": supported_runtimes,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        max_concurrency = d.pop("max_concurrency")

        name = d.pop("name")

        supported_isolations = []
        _supported_isolations = d.pop("supported_isolations")
        for supported_isolations_item_data in _supported_isolations:
            supported_isolations_item = check_isolation(supported_isolations_item_data)

            supported_isolations.append(supported_isolations_item)

        supported_runtimes = []
        _supported_runtimes = d.pop("supported_runtimes")
        for supported_runtimes_item_data in _supported_runtimes:
            supported_runtimes_item = check_runtime(supported_runtimes_item_data)

            supported_runtimes.append(supported_runtimes_item)

        backend_capabilities = cls(
            max_concurrency=max_concurrency,
            name=name,
            supported_isolations=supported_isolations,
            supported_runtimes=supported_runtimes,
        )

        backend_capabilities.additional_properties = d
        return backend_capabilities

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

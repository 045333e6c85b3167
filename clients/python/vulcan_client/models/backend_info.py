from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.backend_capabilities import BackendCapabilities


T = TypeVar("T", bound="BackendInfo")


@_attrs_define
class BackendInfo:
    """One entry of `GET /v1/backends`.

    Attributes:
        available (bool):
        capabilities (BackendCapabilities): What a backend can run.
        name (str):
        details (Any | Unset):
        reason (None | str | Unset):
    """

    available: bool
    capabilities: BackendCapabilities
    name: str
    details: Any | Unset = UNSET
    reason: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        available = self.available

        capabilities = self.capabilities.to_dict()

        name = self.name

        details = self.details

        reason: None | str | Unset
        if isinstance(self.reason, Unset):
            reason = UNSET
        else:
            reason = self.reason

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "available": available,
                "capabilities": capabilities,
                "name": name,
            }
        )
        if details is not UNSET:
            field_dict["details"] = details
        if reason is not UNSET:
            field_dict["reason"] = reason

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.backend_capabilities import BackendCapabilities

        d = dict(src_dict)
        available = d.pop("available")

        capabilities = BackendCapabilities.from_dict(d.pop("capabilities"))

        name = d.pop("name")

        details = d.pop("details", UNSET)

        def _parse_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reason = _parse_reason(d.pop("reason", UNSET))

        backend_info = cls(
            available=available,
            capabilities=capabilities,
            name=name,
            details=details,
            reason=reason,
        )

        backend_info.additional_properties = d
        return backend_info

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

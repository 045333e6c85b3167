from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="Invoked")


@_attrs_define
class Invoked:
    """
    Attributes:
        function (str):
        error (None | str | Unset): Why it was not, if it was not.
        workload_id (None | str | Unset): The invocation (a workload), if it was admitted.
    """

    function: str
    error: None | str | Unset = UNSET
    workload_id: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        function = self.function

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        workload_id: None | str | Unset
        if isinstance(self.workload_id, Unset):
            workload_id = UNSET
        else:
            workload_id = self.workload_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "function": function,
            }
        )
        if error is not UNSET:
            field_dict["error"] = error
        if workload_id is not UNSET:
            field_dict["workload_id"] = workload_id

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        function = d.pop("function")

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        def _parse_workload_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        workload_id = _parse_workload_id(d.pop("workload_id", UNSET))

        invoked = cls(
            function=function,
            error=error,
            workload_id=workload_id,
        )

        invoked.additional_properties = d
        return invoked

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

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="FileEntry")


@_attrs_define
class FileEntry:
    """What a path is.

    Attributes:
        mode (str): Permission bits, as octal text (`0644`).
        modified_at (datetime.datetime):
        name (str):
        path (str): The absolute path inside the sandbox.
        size (int):
        type_ (str): `file`, `dir`, `symlink` or `other`.
        target (None | str | Unset): Where a symbolic link points.
    """

    mode: str
    modified_at: datetime.datetime
    name: str
    path: str
    size: int
    type_: str
    target: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        mode = self.mode

        modified_at = self.modified_at.isoformat()

        name = self.name

        path = self.path

        size = self.size

        type_ = self.type_

        target: None | str | Unset
        if isinstance(self.target, Unset):
            target = UNSET
        else:
            target = self.target

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "mode": mode,
                "modified_at": modified_at,
                "name": name,
                "path": path,
                "size": size,
                "type": type_,
            }
        )
        if target is not UNSET:
            field_dict["target"] = target

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        mode = d.pop("mode")

        modified_at = datetime.datetime.fromisoformat(d.pop("modified_at"))

        name = d.pop("name")

        path = d.pop("path")

        size = d.pop("size")

        type_ = d.pop("type")

        def _parse_target(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        target = _parse_target(d.pop("target", UNSET))

        file_entry = cls(
            mode=mode,
            modified_at=modified_at,
            name=name,
            path=path,
            size=size,
            type_=type_,
            target=target,
        )

        file_entry.additional_properties = d
        return file_entry

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

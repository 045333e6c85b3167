from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="Volume")


@_attrs_define
class Volume:
    """One volume, as the API shows it.

    Attributes:
        created_at (datetime.datetime):
        id (str): Names its file on its node.
        name (str): Unique per tenant: what a sandbox's `volumes` name.
        node_id (str): The node its data is on: only that node's sandboxes mount it.
        size_mb (int): Its size: what its files may fill.
        tenant (str):
    """

    created_at: datetime.datetime
    id: str
    name: str
    node_id: str
    size_mb: int
    tenant: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at.isoformat()

        id = self.id

        name = self.name

        node_id = self.node_id

        size_mb = self.size_mb

        tenant = self.tenant

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "created_at": created_at,
                "id": id,
                "name": name,
                "node_id": node_id,
                "size_mb": size_mb,
                "tenant": tenant,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        id = d.pop("id")

        name = d.pop("name")

        node_id = d.pop("node_id")

        size_mb = d.pop("size_mb")

        tenant = d.pop("tenant")

        volume = cls(
            created_at=created_at,
            id=id,
            name=name,
            node_id=node_id,
            size_mb=size_mb,
            tenant=tenant,
        )

        volume.additional_properties = d
        return volume

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

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="NodeTemplate")


@_attrs_define
class NodeTemplate:
    """[`TemplateOnNode`] of one node.

    Attributes:
        root_bytes (int): The read-only root file converted from the layers, in bytes on disk (0: none).
        snapshot_bytes (int): Their size on disk, in bytes.
        snapshots (int): Snapshots of VMs booted from that root (one per memory and CPU shape and runtime).
        node (str):
    """

    root_bytes: int
    snapshot_bytes: int
    snapshots: int
    node: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        root_bytes = self.root_bytes

        snapshot_bytes = self.snapshot_bytes

        snapshots = self.snapshots

        node = self.node

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "root_bytes": root_bytes,
                "snapshot_bytes": snapshot_bytes,
                "snapshots": snapshots,
                "node": node,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        root_bytes = d.pop("root_bytes")

        snapshot_bytes = d.pop("snapshot_bytes")

        snapshots = d.pop("snapshots")

        node = d.pop("node")

        node_template = cls(
            root_bytes=root_bytes,
            snapshot_bytes=snapshot_bytes,
            snapshots=snapshots,
            node=node,
        )

        node_template.additional_properties = d
        return node_template

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

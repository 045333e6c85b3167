from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.image_config import ImageConfig
    from ..models.node_template import NodeTemplate
    from ..models.resources import Resources


T = TypeVar("T", bound="ImageRecord")


@_attrs_define
class ImageRecord:
    """One registered image.

    Attributes:
        config (ImageConfig): What an image's configuration says about running it.
        digest (str): The manifest's digest, `sha256:...`.
        layers (list[str]): Layer digests, base first.
        pulled_at (datetime.datetime):
        reference (str): The reference as the user wrote it (normalised: registry, repository, tag).
        size_bytes (int): Compressed size of all layers, in bytes.
        default (bool | Unset): Whether runtime `oci` workloads that name no image run this one.
        microvm (list[NodeTemplate] | Unset): What each node has made of it for microVMs: the root converted from its
            layers and
            the snapshots of VMs booted from that root.
        nodes (list[str] | Unset): The nodes that have it pulled and verified (each pulls it on first use).
        resources (None | Resources | Unset):
    """

    config: ImageConfig
    digest: str
    layers: list[str]
    pulled_at: datetime.datetime
    reference: str
    size_bytes: int
    default: bool | Unset = UNSET
    microvm: list[NodeTemplate] | Unset = UNSET
    nodes: list[str] | Unset = UNSET
    resources: None | Resources | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.resources import Resources

        config = self.config.to_dict()

        digest = self.digest

        layers = self.layers

        pulled_at = self.pulled_at.isoformat()

        reference = self.reference

        size_bytes = self.size_bytes

        default = self.default

        microvm: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.microvm, Unset):
            microvm = []
            for microvm_item_data in self.microvm:
                microvm_item = microvm_item_data.to_dict()
                microvm.append(microvm_item)

        nodes: list[str] | Unset = UNSET
        if not isinstance(self.nodes, Unset):
            nodes = self.nodes

        resources: dict[str, Any] | None | Unset
        if isinstance(self.resources, Unset):
            resources = UNSET
        elif isinstance(self.resources, Resources):
            resources = self.resources.to_dict()
        else:
            resources = self.resources

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "config": config,
                "digest": digest,
                "layers": layers,
                "pulled_at": pulled_at,
                "reference": reference,
                "size_bytes": size_bytes,
            }
        )
        if default is not UNSET:
            field_dict["default"] = default
        if microvm is not UNSET:
            field_dict["microvm"] = microvm
        if nodes is not UNSET:
            field_dict["nodes"] = nodes
        if resources is not UNSET:
            field_dict["resources"] = resources

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.image_config import ImageConfig
        from ..models.node_template import NodeTemplate
        from ..models.resources import Resources

        d = dict(src_dict)
        config = ImageConfig.from_dict(d.pop("config"))

        digest = d.pop("digest")

        layers = cast(list[str], d.pop("layers"))

        pulled_at = datetime.datetime.fromisoformat(d.pop("pulled_at"))

        reference = d.pop("reference")

        size_bytes = d.pop("size_bytes")

        default = d.pop("default", UNSET)

        _microvm = d.pop("microvm", UNSET)
        microvm: list[NodeTemplate] | Unset = UNSET
        if _microvm is not UNSET:
            microvm = []
            for microvm_item_data in _microvm:
                microvm_item = NodeTemplate.from_dict(microvm_item_data)

                microvm.append(microvm_item)

        nodes = cast(list[str], d.pop("nodes", UNSET))

        def _parse_resources(data: object) -> None | Resources | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                resources_type_0 = Resources.from_dict(data)

                return resources_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Resources | Unset, data)

        resources = _parse_resources(d.pop("resources", UNSET))

        image_record = cls(
            config=config,
            digest=digest,
            layers=layers,
            pulled_at=pulled_at,
            reference=reference,
            size_bytes=size_bytes,
            default=default,
            microvm=microvm,
            nodes=nodes,
            resources=resources,
        )

        image_record.additional_properties = d
        return image_record

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

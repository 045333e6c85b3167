from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.resources import Resources


T = TypeVar("T", bound="PullRequest")


@_attrs_define
class PullRequest:
    """`POST /v1/images`.

    Attributes:
        reference (str):
        default (bool | Unset):
        resources (None | Resources | Unset):
    """

    reference: str
    default: bool | Unset = UNSET
    resources: None | Resources | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.resources import Resources

        reference = self.reference

        default = self.default

        resources: dict[str, Any] | None | Unset
        if isinstance(self.resources, Unset):
            resources = UNSET
        elif isinstance(self.resources, Resources):
            resources = self.resources.to_dict()
        else:
            resources = self.resources

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "reference": reference,
            }
        )
        if default is not UNSET:
            field_dict["default"] = default
        if resources is not UNSET:
            field_dict["resources"] = resources

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.resources import Resources

        d = dict(src_dict)
        reference = d.pop("reference")

        default = d.pop("default", UNSET)

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

        pull_request = cls(
            reference=reference,
            default=default,
            resources=resources,
        )

        return pull_request

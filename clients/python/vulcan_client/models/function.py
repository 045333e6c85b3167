from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.runtime import Runtime, check_runtime
from ..types import UNSET, Unset

T = TypeVar("T", bound="Function")


@_attrs_define
class Function:
    """A function as listed: its active version and what it has done.

    Attributes:
        active_version (int):
        created_at (datetime.datetime):
        invocations (int): Invocations of any of its versions.
        latest_version (int):
        name (str):
        public (bool):
        runtime (Runtime): The language runtime a workload is written for.
        tenant (str):
        updated_at (datetime.datetime):
        instances (int | Unset): Warm instances of its active version on the live nodes now.
    """

    active_version: int
    created_at: datetime.datetime
    invocations: int
    latest_version: int
    name: str
    public: bool
    runtime: Runtime
    tenant: str
    updated_at: datetime.datetime
    instances: int | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        active_version = self.active_version

        created_at = self.created_at.isoformat()

        invocations = self.invocations

        latest_version = self.latest_version

        name = self.name

        public = self.public

        runtime: str = self.runtime

        tenant = self.tenant

        updated_at = self.updated_at.isoformat()

        instances = self.instances

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "active_version": active_version,
                "created_at": created_at,
                "invocations": invocations,
                "latest_version": latest_version,
                "name": name,
                "public": public,
                "runtime": runtime,
                "tenant": tenant,
                "updated_at": updated_at,
            }
        )
        if instances is not UNSET:
            field_dict["instances"] = instances

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        active_version = d.pop("active_version")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        invocations = d.pop("invocations")

        latest_version = d.pop("latest_version")

        name = d.pop("name")

        public = d.pop("public")

        runtime = check_runtime(d.pop("runtime"))

        tenant = d.pop("tenant")

        updated_at = datetime.datetime.fromisoformat(d.pop("updated_at"))

        instances = d.pop("instances", UNSET)

        function = cls(
            active_version=active_version,
            created_at=created_at,
            invocations=invocations,
            latest_version=latest_version,
            name=name,
            public=public,
            runtime=runtime,
            tenant=tenant,
            updated_at=updated_at,
            instances=instances,
        )

        function.additional_properties = d
        return function

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

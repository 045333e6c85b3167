from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.role import Role, check_role

T = TypeVar("T", bound="Me")


@_attrs_define
class Me:
    """The caller's key, role, tenant and permissions.

    Attributes:
        auth (bool): Whether authentication is on: with it off every request acts as an admin.
        key_id (str): The key's id (`admin-env` for `VULCAN_ADMIN_KEY`, `auth-off` with auth off).
        permissions (list[str]): Every permission of the role, e.g. `workloads:kill`.
        role (Role): A key's role: a fixed set of permissions.
        tenant (str):
    """

    auth: bool
    key_id: str
    permissions: list[str]
    role: Role
    tenant: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        auth = self.auth

        key_id = self.key_id

        permissions = self.permissions

        role: str = self.role

        tenant = self.tenant

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "auth": auth,
                "key_id": key_id,
                "permissions": permissions,
                "role": role,
                "tenant": tenant,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        auth = d.pop("auth")

        key_id = d.pop("key_id")

        permissions = cast(list[str], d.pop("permissions"))

        role = check_role(d.pop("role"))

        tenant = d.pop("tenant")

        me = cls(
            auth=auth,
            key_id=key_id,
            permissions=permissions,
            role=role,
            tenant=tenant,
        )

        me.additional_properties = d
        return me

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

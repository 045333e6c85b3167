from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..models.egress import Egress, check_egress
from ..types import UNSET, Unset

T = TypeVar("T", bound="NetworkPolicy")


@_attrs_define
class NetworkPolicy:
    """A workload's network policy, as it asked for it.

    Attributes:
        allow (list[str] | Unset): `host[:port]`, `*.domain[:port]`, `a.b.c.d[/prefix][:port]`.
        deny (list[str] | Unset): Same forms as `allow`; a destination both allow and deny match is denied.
        egress (Egress | Unset): Whether a workload has a network at all.
    """

    allow: list[str] | Unset = UNSET
    deny: list[str] | Unset = UNSET
    egress: Egress | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        allow: list[str] | Unset = UNSET
        if not isinstance(self.allow, Unset):
            allow = self.allow

        deny: list[str] | Unset = UNSET
        if not isinstance(self.deny, Unset):
            deny = self.deny

        egress: str | Unset = UNSET
        if not isinstance(self.egress, Unset):
            egress = self.egress

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if allow is not UNSET:
            field_dict["allow"] = allow
        if deny is not UNSET:
            field_dict["deny"] = deny
        if egress is not UNSET:
            field_dict["egress"] = egress

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        allow = cast(list[str], d.pop("allow", UNSET))

        deny = cast(list[str], d.pop("deny", UNSET))

        _egress = d.pop("egress", UNSET)
        egress: Egress | Unset
        if isinstance(_egress, Unset):
            egress = UNSET
        else:
            egress = check_egress(_egress)

        network_policy = cls(
            allow=allow,
            deny=deny,
            egress=egress,
        )

        return network_policy

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="Event")


@_attrs_define
class Event:
    """One event.

    Attributes:
        at (datetime.datetime):
        id (str): The workload's, node's, function's or schedule's id (name for a function).
        kind (str): `workload`, `node`, `function` or `schedule`.
        node (str): The node that saw it.
        type_ (str): `created`, `started`, `finished`; `joined`, `lost`, `left`; `deployed`; `fired`.
        function (None | str | Unset):
        isolation (None | str | Unset):
        status (None | str | Unset): A workload's status; a function's version; a fired schedule's workload id.
        tenant (None | str | Unset): Whose it is (`None` for nodes).
        workload_id (None | str | Unset):
    """

    at: datetime.datetime
    id: str
    kind: str
    node: str
    type_: str
    function: None | str | Unset = UNSET
    isolation: None | str | Unset = UNSET
    status: None | str | Unset = UNSET
    tenant: None | str | Unset = UNSET
    workload_id: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        at = self.at.isoformat()

        id = self.id

        kind = self.kind

        node = self.node

        type_ = self.type_

        function: None | str | Unset
        if isinstance(self.function, Unset):
            function = UNSET
        else:
            function = self.function

        isolation: None | str | Unset
        if isinstance(self.isolation, Unset):
            isolation = UNSET
        else:
            isolation = self.isolation

        status: None | str | Unset
        if isinstance(self.status, Unset):
            status = UNSET
        else:
            status = self.status

        tenant: None | str | Unset
        if isinstance(self.tenant, Unset):
            tenant = UNSET
        else:
            tenant = self.tenant

        workload_id: None | str | Unset
        if isinstance(self.workload_id, Unset):
            workload_id = UNSET
        else:
            workload_id = self.workload_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "at": at,
                "id": id,
                "kind": kind,
                "node": node,
                "type": type_,
            }
        )
        if function is not UNSET:
            field_dict["function"] = function
        if isolation is not UNSET:
            field_dict["isolation"] = isolation
        if status is not UNSET:
            field_dict["status"] = status
        if tenant is not UNSET:
            field_dict["tenant"] = tenant
        if workload_id is not UNSET:
            field_dict["workload_id"] = workload_id

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        at = datetime.datetime.fromisoformat(d.pop("at"))

        id = d.pop("id")

        kind = d.pop("kind")

        node = d.pop("node")

        type_ = d.pop("type")

        def _parse_function(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        function = _parse_function(d.pop("function", UNSET))

        def _parse_isolation(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        isolation = _parse_isolation(d.pop("isolation", UNSET))

        def _parse_status(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        status = _parse_status(d.pop("status", UNSET))

        def _parse_tenant(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        tenant = _parse_tenant(d.pop("tenant", UNSET))

        def _parse_workload_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        workload_id = _parse_workload_id(d.pop("workload_id", UNSET))

        event = cls(
            at=at,
            id=id,
            kind=kind,
            node=node,
            type_=type_,
            function=function,
            isolation=isolation,
            status=status,
            tenant=tenant,
            workload_id=workload_id,
        )

        event.additional_properties = d
        return event

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

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.node_state import NodeState, check_node_state
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.node_backend import NodeBackend
    from ..models.node_record_instances import NodeRecordInstances


T = TypeVar("T", bound="Node")


@_attrs_define
class Node:
    """
    Attributes:
        active_workloads (int): Workloads it is running now.
        backends (list[NodeBackend]):
        cpus (int):
        heartbeat_at (datetime.datetime):
        hostname (str):
        id (str):
        memory_total_mb (int):
        memory_used_mb (int):
        started_at (datetime.datetime):
        version (str):
        state (NodeState): How a node looks to the others.
        uptime_s (int):
        addresses (list[str] | Unset): Its host's IPv4 addresses (not loopback, not its sandboxes' links): what no
            workload on another node may reach.
        api_url (str | Unset): Where its API answers the other nodes (a request about a sandbox it holds is
            forwarded there); empty: not reachable from them.
        instances (NodeRecordInstances | Unset): Warm function instances it holds, per `tenant/function/version`.
        left_at (datetime.datetime | None | Unset): Set when it shut down cleanly.
    """

    active_workloads: int
    backends: list[NodeBackend]
    cpus: int
    heartbeat_at: datetime.datetime
    hostname: str
    id: str
    memory_total_mb: int
    memory_used_mb: int
    started_at: datetime.datetime
    version: str
    state: NodeState
    uptime_s: int
    addresses: list[str] | Unset = UNSET
    api_url: str | Unset = UNSET
    instances: NodeRecordInstances | Unset = UNSET
    left_at: datetime.datetime | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        active_workloads = self.active_workloads

        backends = []
        for backends_item_data in self.backends:
            backends_item = backends_item_data.to_dict()
            backends.append(backends_item)

        cpus = self.cpus

        heartbeat_at = self.heartbeat_at.isoformat()

        hostname = self.hostname

        id = self.id

        memory_total_mb = self.memory_total_mb

        memory_used_mb = self.memory_used_mb

        started_at = self.started_at.isoformat()

        version = self.version

        state: str = self.state

        uptime_s = self.uptime_s

        addresses: list[str] | Unset = UNSET
        if not isinstance(self.addresses, Unset):
            addresses = self.addresses

        api_url = self.api_url

        instances: dict[str, Any] | Unset = UNSET
        if not isinstance(self.instances, Unset):
            instances = self.instances.to_dict()

        left_at: None | str | Unset
        if isinstance(self.left_at, Unset):
            left_at = UNSET
        elif isinstance(self.left_at, datetime.datetime):
            left_at = self.left_at.isoformat()
        else:
            left_at = self.left_at

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "active_workloads": active_workloads,
                "backends": backends,
                "cpus": cpus,
                "heartbeat_at": heartbeat_at,
                "hostname": hostname,
                "id": id,
                "memory_total_mb": memory_total_mb,
                "memory_used_mb": memory_used_mb,
                "started_at": started_at,
                "version": version,
                "state": state,
                "uptime_s": uptime_s,
            }
        )
        if addresses is not UNSET:
            field_dict["addresses"] = addresses
        if api_url is not UNSET:
            field_dict["api_url"] = api_url
        if instances is not UNSET:
            field_dict["instances"] = instances
        if left_at is not UNSET:
            field_dict["left_at"] = left_at

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.node_backend import NodeBackend
        from ..models.node_record_instances import NodeRecordInstances

        d = dict(src_dict)
        active_workloads = d.pop("active_workloads")

        backends = []
        _backends = d.pop("backends")
        for backends_item_data in _backends:
            backends_item = NodeBackend.from_dict(backends_item_data)

            backends.append(backends_item)

        cpus = d.pop("cpus")

        heartbeat_at = datetime.datetime.fromisoformat(d.pop("heartbeat_at"))

        hostname = d.pop("hostname")

        id = d.pop("id")

        memory_total_mb = d.pop("memory_total_mb")

        memory_used_mb = d.pop("memory_used_mb")

        started_at = datetime.datetime.fromisoformat(d.pop("started_at"))

        version = d.pop("version")

        state = check_node_state(d.pop("state"))

        uptime_s = d.pop("uptime_s")

        addresses = cast(list[str], d.pop("addresses", UNSET))

        api_url = d.pop("api_url", UNSET)

        _instances = d.pop("instances", UNSET)
        instances: NodeRecordInstances | Unset
        if isinstance(_instances, Unset):
            instances = UNSET
        else:
            instances = NodeRecordInstances.from_dict(_instances)

        def _parse_left_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                left_at_type_0 = datetime.datetime.fromisoformat(data)

                return left_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        left_at = _parse_left_at(d.pop("left_at", UNSET))

        node = cls(
            active_workloads=active_workloads,
            backends=backends,
            cpus=cpus,
            heartbeat_at=heartbeat_at,
            hostname=hostname,
            id=id,
            memory_total_mb=memory_total_mb,
            memory_used_mb=memory_used_mb,
            started_at=started_at,
            version=version,
            state=state,
            uptime_s=uptime_s,
            addresses=addresses,
            api_url=api_url,
            instances=instances,
            left_at=left_at,
        )

        node.additional_properties = d
        return node

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

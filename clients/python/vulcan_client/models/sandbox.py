from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.isolation import Isolation, check_isolation
from ..models.on_timeout import OnTimeout, check_on_timeout
from ..models.pause_mode import PauseMode, check_pause_mode
from ..models.sandbox_state import SandboxState, check_sandbox_state
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.sandbox_metadata import SandboxMetadata
    from ..models.sandbox_resources import SandboxResources
    from ..models.volume_mount import VolumeMount


T = TypeVar("T", bound="Sandbox")


@_attrs_define
class Sandbox:
    """One sandbox, as the API shows it.

    Attributes:
        end_at (datetime.datetime): Its deadline: it is killed (or paused) then unless `POST …/timeout` moves it.
        id (str):
        image (str): The registered image its root comes from.
        isolation (Isolation): How a workload is isolated from the host. `Auto` only appears in requests: a stored
            workload always carries the isolation that was actually used.
        node_id (str): The node it lives on: every request about it is served there.
        on_timeout (OnTimeout): What a sandbox does when its deadline passes.
        resources (SandboxResources): A sandbox's bounds: CPUs, memory, and the disk its writes may fill.
        started_at (datetime.datetime):
        state (SandboxState): Where a sandbox is in its life.
        tenant (str):
        access_token (str | Unset): The token its E2B-compatible envd routes take (`X-Access-Token`): whoever holds
            it may run processes and touch files in this sandbox alone.
        auto_resume (bool | Unset): Whether a request that needs it running resumes it when it is paused (else `409`).
        end_reason (None | str | Unset): Why it ended or was lost.
        ended_at (datetime.datetime | None | Unset):
        metadata (SandboxMetadata | Unset):
        pause_mode (None | PauseMode | Unset):
        volumes (list[VolumeMount] | Unset): The volumes mounted in it.
    """

    end_at: datetime.datetime
    id: str
    image: str
    isolation: Isolation
    node_id: str
    on_timeout: OnTimeout
    resources: SandboxResources
    started_at: datetime.datetime
    state: SandboxState
    tenant: str
    access_token: str | Unset = UNSET
    auto_resume: bool | Unset = UNSET
    end_reason: None | str | Unset = UNSET
    ended_at: datetime.datetime | None | Unset = UNSET
    metadata: SandboxMetadata | Unset = UNSET
    pause_mode: None | PauseMode | Unset = UNSET
    volumes: list[VolumeMount] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        end_at = self.end_at.isoformat()

        id = self.id

        image = self.image

        isolation: str = self.isolation

        node_id = self.node_id

        on_timeout: str = self.on_timeout

        resources = self.resources.to_dict()

        started_at = self.started_at.isoformat()

        state: str = self.state

        tenant = self.tenant

        access_token = self.access_token

        auto_resume = self.auto_resume

        end_reason: None | str | Unset
        if isinstance(self.end_reason, Unset):
            end_reason = UNSET
        else:
            end_reason = self.end_reason

        ended_at: None | str | Unset
        if isinstance(self.ended_at, Unset):
            ended_at = UNSET
        elif isinstance(self.ended_at, datetime.datetime):
            ended_at = self.ended_at.isoformat()
        else:
            ended_at = self.ended_at

        metadata: dict[str, Any] | Unset = UNSET
        if not isinstance(self.metadata, Unset):
            metadata = self.metadata.to_dict()

        pause_mode: None | str | Unset
        if isinstance(self.pause_mode, Unset):
            pause_mode = UNSET
        elif isinstance(self.pause_mode, str):
            pause_mode = self.pause_mode
        else:
            pause_mode = self.pause_mode

        volumes: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.volumes, Unset):
            volumes = []
            for volumes_item_data in self.volumes:
                volumes_item = volumes_item_data.to_dict()
                volumes.append(volumes_item)

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "end_at": end_at,
                "id": id,
                "image": image,
                "isolation": isolation,
                "node_id": node_id,
                "on_timeout": on_timeout,
                "resources": resources,
                "started_at": started_at,
                "state": state,
                "tenant": tenant,
            }
        )
        if access_token is not UNSET:
            field_dict["access_token"] = access_token
        if auto_resume is not UNSET:
            field_dict["auto_resume"] = auto_resume
        if end_reason is not UNSET:
            field_dict["end_reason"] = end_reason
        if ended_at is not UNSET:
            field_dict["ended_at"] = ended_at
        if metadata is not UNSET:
            field_dict["metadata"] = metadata
        if pause_mode is not UNSET:
            field_dict["pause_mode"] = pause_mode
        if volumes is not UNSET:
            field_dict["volumes"] = volumes

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.sandbox_metadata import SandboxMetadata
        from ..models.sandbox_resources import SandboxResources
        from ..models.volume_mount import VolumeMount

        d = dict(src_dict)
        end_at = datetime.datetime.fromisoformat(d.pop("end_at"))

        id = d.pop("id")

        image = d.pop("image")

        isolation = check_isolation(d.pop("isolation"))

        node_id = d.pop("node_id")

        on_timeout = check_on_timeout(d.pop("on_timeout"))

        resources = SandboxResources.from_dict(d.pop("resources"))

        started_at = datetime.datetime.fromisoformat(d.pop("started_at"))

        state = check_sandbox_state(d.pop("state"))

        tenant = d.pop("tenant")

        access_token = d.pop("access_token", UNSET)

        auto_resume = d.pop("auto_resume", UNSET)

        def _parse_end_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        end_reason = _parse_end_reason(d.pop("end_reason", UNSET))

        def _parse_ended_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                ended_at_type_0 = datetime.datetime.fromisoformat(data)

                return ended_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        ended_at = _parse_ended_at(d.pop("ended_at", UNSET))

        _metadata = d.pop("metadata", UNSET)
        metadata: SandboxMetadata | Unset
        if isinstance(_metadata, Unset):
            metadata = UNSET
        else:
            metadata = SandboxMetadata.from_dict(_metadata)

        def _parse_pause_mode(data: object) -> None | PauseMode | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                pause_mode_type_0 = check_pause_mode(data)

                return pause_mode_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | PauseMode | Unset, data)

        pause_mode = _parse_pause_mode(d.pop("pause_mode", UNSET))

        _volumes = d.pop("volumes", UNSET)
        volumes: list[VolumeMount] | Unset = UNSET
        if _volumes is not UNSET:
            volumes = []
            for volumes_item_data in _volumes:
                volumes_item = VolumeMount.from_dict(volumes_item_data)

                volumes.append(volumes_item)

        sandbox = cls(
            end_at=end_at,
            id=id,
            image=image,
            isolation=isolation,
            node_id=node_id,
            on_timeout=on_timeout,
            resources=resources,
            started_at=started_at,
            state=state,
            tenant=tenant,
            access_token=access_token,
            auto_resume=auto_resume,
            end_reason=end_reason,
            ended_at=ended_at,
            metadata=metadata,
            pause_mode=pause_mode,
            volumes=volumes,
        )

        sandbox.additional_properties = d
        return sandbox

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

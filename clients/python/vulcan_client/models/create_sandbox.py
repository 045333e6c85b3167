from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..models.on_timeout import OnTimeout, check_on_timeout
from ..models.sandbox_isolation import SandboxIsolation, check_sandbox_isolation
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.create_sandbox_env import CreateSandboxEnv
    from ..models.create_sandbox_metadata import CreateSandboxMetadata
    from ..models.sandbox_resources_body import SandboxResourcesBody
    from ..models.volume_mount import VolumeMount


T = TypeVar("T", bound="CreateSandbox")


@_attrs_define
class CreateSandbox:
    """`POST /v1/sandboxes`.

    Attributes:
        auto_resume (bool | Unset): A request that needs it running resumes it when it is paused (else `409`).
        env (CreateSandboxEnv | Unset): Every process in it starts with these.
        image (None | str | Unset): A registered image (or one this key may pull); the default image if absent.
        isolation (None | SandboxIsolation | Unset):
        metadata (CreateSandboxMetadata | Unset): Free-form labels, filtered on by `GET
            /v1/sandboxes?metadata=key=value`.
        on_timeout (OnTimeout | Unset): What a sandbox does when its deadline passes.
        resources (None | SandboxResourcesBody | Unset):
        timeout_s (int | None | Unset): Seconds until it is killed; `POST …/timeout` moves the deadline.
        volumes (list[VolumeMount] | Unset): The tenant's volumes to mount (at most 8): each `{name, path, read_only}`.
            A volume
            has one writer and no reader beside it, or readers only (`409` otherwise).
    """

    auto_resume: bool | Unset = UNSET
    env: CreateSandboxEnv | Unset = UNSET
    image: None | str | Unset = UNSET
    isolation: None | SandboxIsolation | Unset = UNSET
    metadata: CreateSandboxMetadata | Unset = UNSET
    on_timeout: OnTimeout | Unset = UNSET
    resources: None | SandboxResourcesBody | Unset = UNSET
    timeout_s: int | None | Unset = UNSET
    volumes: list[VolumeMount] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.sandbox_resources_body import SandboxResourcesBody

        auto_resume = self.auto_resume

        env: dict[str, Any] | Unset = UNSET
        if not isinstance(self.env, Unset):
            env = self.env.to_dict()

        image: None | str | Unset
        if isinstance(self.image, Unset):
            image = UNSET
        else:
            image = self.image

        isolation: None | str | Unset
        if isinstance(self.isolation, Unset):
            isolation = UNSET
        elif isinstance(self.isolation, str):
            isolation = self.isolation
        else:
            isolation = self.isolation

        metadata: dict[str, Any] | Unset = UNSET
        if not isinstance(self.metadata, Unset):
            metadata = self.metadata.to_dict()

        on_timeout: str | Unset = UNSET
        if not isinstance(self.on_timeout, Unset):
            on_timeout = self.on_timeout

        resources: dict[str, Any] | None | Unset
        if isinstance(self.resources, Unset):
            resources = UNSET
        elif isinstance(self.resources, SandboxResourcesBody):
            resources = self.resources.to_dict()
        else:
            resources = self.resources

        timeout_s: int | None | Unset
        if isinstance(self.timeout_s, Unset):
            timeout_s = UNSET
        else:
            timeout_s = self.timeout_s

        volumes: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.volumes, Unset):
            volumes = []
            for volumes_item_data in self.volumes:
                volumes_item = volumes_item_data.to_dict()
                volumes.append(volumes_item)

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if auto_resume is not UNSET:
            field_dict["auto_resume"] = auto_resume
        if env is not UNSET:
            field_dict["env"] = env
        if image is not UNSET:
            field_dict["image"] = image
        if isolation is not UNSET:
            field_dict["isolation"] = isolation
        if metadata is not UNSET:
            field_dict["metadata"] = metadata
        if on_timeout is not UNSET:
            field_dict["on_timeout"] = on_timeout
        if resources is not UNSET:
            field_dict["resources"] = resources
        if timeout_s is not UNSET:
            field_dict["timeout_s"] = timeout_s
        if volumes is not UNSET:
            field_dict["volumes"] = volumes

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.create_sandbox_env import CreateSandboxEnv
        from ..models.create_sandbox_metadata import CreateSandboxMetadata
        from ..models.sandbox_resources_body import SandboxResourcesBody
        from ..models.volume_mount import VolumeMount

        d = dict(src_dict)
        auto_resume = d.pop("auto_resume", UNSET)

        _env = d.pop("env", UNSET)
        env: CreateSandboxEnv | Unset
        if isinstance(_env, Unset):
            env = UNSET
        else:
            env = CreateSandboxEnv.from_dict(_env)

        def _parse_image(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        image = _parse_image(d.pop("image", UNSET))

        def _parse_isolation(data: object) -> None | SandboxIsolation | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                isolation_type_0 = check_sandbox_isolation(data)

                return isolation_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | SandboxIsolation | Unset, data)

        isolation = _parse_isolation(d.pop("isolation", UNSET))

        _metadata = d.pop("metadata", UNSET)
        metadata: CreateSandboxMetadata | Unset
        if isinstance(_metadata, Unset):
            metadata = UNSET
        else:
            metadata = CreateSandboxMetadata.from_dict(_metadata)

        _on_timeout = d.pop("on_timeout", UNSET)
        on_timeout: OnTimeout | Unset
        if isinstance(_on_timeout, Unset):
            on_timeout = UNSET
        else:
            on_timeout = check_on_timeout(_on_timeout)

        def _parse_resources(data: object) -> None | SandboxResourcesBody | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                resources_type_0 = SandboxResourcesBody.from_dict(data)

                return resources_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | SandboxResourcesBody | Unset, data)

        resources = _parse_resources(d.pop("resources", UNSET))

        def _parse_timeout_s(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        timeout_s = _parse_timeout_s(d.pop("timeout_s", UNSET))

        _volumes = d.pop("volumes", UNSET)
        volumes: list[VolumeMount] | Unset = UNSET
        if _volumes is not UNSET:
            volumes = []
            for volumes_item_data in _volumes:
                volumes_item = VolumeMount.from_dict(volumes_item_data)

                volumes.append(volumes_item)

        create_sandbox = cls(
            auto_resume=auto_resume,
            env=env,
            image=image,
            isolation=isolation,
            metadata=metadata,
            on_timeout=on_timeout,
            resources=resources,
            timeout_s=timeout_s,
            volumes=volumes,
        )

        return create_sandbox

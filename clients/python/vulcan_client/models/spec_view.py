from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.isolation import Isolation, check_isolation
from ..models.runtime import Runtime, check_runtime
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.async_policy import AsyncPolicy
    from ..models.code_env import CodeEnv
    from ..models.network_policy import NetworkPolicy
    from ..models.resources import Resources
    from ..models.volume_mount import VolumeMount


T = TypeVar("T", bound="SpecView")


@_attrs_define
class SpecView:
    """What a workload was asked to run, as stored (secrets by name only; an archive by size).

    Attributes:
        isolation (Isolation): How a workload is isolated from the host. `Auto` only appears in requests: a stored
            workload always carries the isolation that was actually used.
        resources (Resources): Resource limits of one workload, already validated against the server's limits.
        runtime (Runtime): The language runtime a workload is written for.
        input_ (Any):
        code (None | str | Unset): Source text: a module, a script, or base64 for `wasm`.
        command (list[str] | None | Unset):
        env (CodeEnv | Unset):
        image (None | str | Unset):
        network (NetworkPolicy | Unset): A workload's network policy, as it asked for it.
        secrets (list[str] | Unset): Secrets (by name) the code gets as environment variables; their values are added
            by the node that runs it, never stored with it.
        async_policy (AsyncPolicy | None | Unset):
        code_archive_bytes (int | None | Unset): The size of its `code_archive`, if it had one (the archive itself is
            not answered).
        volumes (list[VolumeMount] | Unset): The volumes it mounts.
    """

    isolation: Isolation
    resources: Resources
    runtime: Runtime
    input_: Any
    code: None | str | Unset = UNSET
    command: list[str] | None | Unset = UNSET
    env: CodeEnv | Unset = UNSET
    image: None | str | Unset = UNSET
    network: NetworkPolicy | Unset = UNSET
    secrets: list[str] | Unset = UNSET
    async_policy: AsyncPolicy | None | Unset = UNSET
    code_archive_bytes: int | None | Unset = UNSET
    volumes: list[VolumeMount] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.async_policy import AsyncPolicy

        isolation: str = self.isolation

        resources = self.resources.to_dict()

        runtime: str = self.runtime

        input_ = self.input_

        code: None | str | Unset
        if isinstance(self.code, Unset):
            code = UNSET
        else:
            code = self.code

        command: list[str] | None | Unset
        if isinstance(self.command, Unset):
            command = UNSET
        elif isinstance(self.command, list):
            command = self.command

        else:
            command = self.command

        env: dict[str, Any] | Unset = UNSET
        if not isinstance(self.env, Unset):
            env = self.env.to_dict()

        image: None | str | Unset
        if isinstance(self.image, Unset):
            image = UNSET
        else:
            image = self.image

        network: dict[str, Any] | Unset = UNSET
        if not isinstance(self.network, Unset):
            network = self.network.to_dict()

        secrets: list[str] | Unset = UNSET
        if not isinstance(self.secrets, Unset):
            secrets = self.secrets

        async_policy: dict[str, Any] | None | Unset
        if isinstance(self.async_policy, Unset):
            async_policy = UNSET
        elif isinstance(self.async_policy, AsyncPolicy):
            async_policy = self.async_policy.to_dict()
        else:
            async_policy = self.async_policy

        code_archive_bytes: int | None | Unset
        if isinstance(self.code_archive_bytes, Unset):
            code_archive_bytes = UNSET
        else:
            code_archive_bytes = self.code_archive_bytes

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
                "isolation": isolation,
                "resources": resources,
                "runtime": runtime,
                "input": input_,
            }
        )
        if code is not UNSET:
            field_dict["code"] = code
        if command is not UNSET:
            field_dict["command"] = command
        if env is not UNSET:
            field_dict["env"] = env
        if image is not UNSET:
            field_dict["image"] = image
        if network is not UNSET:
            field_dict["network"] = network
        if secrets is not UNSET:
            field_dict["secrets"] = secrets
        if async_policy is not UNSET:
            field_dict["async_policy"] = async_policy
        if code_archive_bytes is not UNSET:
            field_dict["code_archive_bytes"] = code_archive_bytes
        if volumes is not UNSET:
            field_dict["volumes"] = volumes

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.async_policy import AsyncPolicy
        from ..models.code_env import CodeEnv
        from ..models.network_policy import NetworkPolicy
        from ..models.resources import Resources
        from ..models.volume_mount import VolumeMount

        d = dict(src_dict)
        isolation = check_isolation(d.pop("isolation"))

        resources = Resources.from_dict(d.pop("resources"))

        runtime = check_runtime(d.pop("runtime"))

        input_ = d.pop("input")

        def _parse_code(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        code = _parse_code(d.pop("code", UNSET))

        def _parse_command(data: object) -> list[str] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                command_type_0 = cast(list[str], data)

                return command_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | None | Unset, data)

        command = _parse_command(d.pop("command", UNSET))

        _env = d.pop("env", UNSET)
        env: CodeEnv | Unset
        if isinstance(_env, Unset):
            env = UNSET
        else:
            env = CodeEnv.from_dict(_env)

        def _parse_image(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        image = _parse_image(d.pop("image", UNSET))

        _network = d.pop("network", UNSET)
        network: NetworkPolicy | Unset
        if isinstance(_network, Unset):
            network = UNSET
        else:
            network = NetworkPolicy.from_dict(_network)

        secrets = cast(list[str], d.pop("secrets", UNSET))

        def _parse_async_policy(data: object) -> AsyncPolicy | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                async_policy_type_0 = AsyncPolicy.from_dict(data)

                return async_policy_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(AsyncPolicy | None | Unset, data)

        async_policy = _parse_async_policy(d.pop("async_policy", UNSET))

        def _parse_code_archive_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        code_archive_bytes = _parse_code_archive_bytes(
            d.pop("code_archive_bytes", UNSET)
        )

        _volumes = d.pop("volumes", UNSET)
        volumes: list[VolumeMount] | Unset = UNSET
        if _volumes is not UNSET:
            volumes = []
            for volumes_item_data in _volumes:
                volumes_item = VolumeMount.from_dict(volumes_item_data)

                volumes.append(volumes_item)

        spec_view = cls(
            isolation=isolation,
            resources=resources,
            runtime=runtime,
            input_=input_,
            code=code,
            command=command,
            env=env,
            image=image,
            network=network,
            secrets=secrets,
            async_policy=async_policy,
            code_archive_bytes=code_archive_bytes,
            volumes=volumes,
        )

        spec_view.additional_properties = d
        return spec_view

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

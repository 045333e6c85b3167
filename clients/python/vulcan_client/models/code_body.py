from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.isolation import Isolation, check_isolation
from ..models.runtime import Runtime, check_runtime
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.code_body_env import CodeBodyEnv
    from ..models.network_policy import NetworkPolicy
    from ..models.resources_body import ResourcesBody


T = TypeVar("T", bound="CodeBody")


@_attrs_define
class CodeBody:
    """What to run.

    Attributes:
        runtime (Runtime): The language runtime a workload is written for.
        code (None | str | Unset):
        code_archive (None | str | Unset): Base64 of a gzip-compressed tar archive.
        command (list[str] | None | Unset):
        env (CodeBodyEnv | Unset):
        image (None | str | Unset):
        isolation (Isolation | None | Unset):
        network (NetworkPolicy | Unset): A workload's network policy, as it asked for it.
        resources (ResourcesBody | Unset):
        secrets (list[str] | Unset): Secrets (by name) the code gets as environment variables.
    """

    runtime: Runtime
    code: None | str | Unset = UNSET
    code_archive: None | str | Unset = UNSET
    command: list[str] | None | Unset = UNSET
    env: CodeBodyEnv | Unset = UNSET
    image: None | str | Unset = UNSET
    isolation: Isolation | None | Unset = UNSET
    network: NetworkPolicy | Unset = UNSET
    resources: ResourcesBody | Unset = UNSET
    secrets: list[str] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        runtime: str = self.runtime

        code: None | str | Unset
        if isinstance(self.code, Unset):
            code = UNSET
        else:
            code = self.code

        code_archive: None | str | Unset
        if isinstance(self.code_archive, Unset):
            code_archive = UNSET
        else:
            code_archive = self.code_archive

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

        isolation: None | str | Unset
        if isinstance(self.isolation, Unset):
            isolation = UNSET
        elif isinstance(self.isolation, str):
            isolation = self.isolation
        else:
            isolation = self.isolation

        network: dict[str, Any] | Unset = UNSET
        if not isinstance(self.network, Unset):
            network = self.network.to_dict()

        resources: dict[str, Any] | Unset = UNSET
        if not isinstance(self.resources, Unset):
            resources = self.resources.to_dict()

        secrets: list[str] | Unset = UNSET
        if not isinstance(self.secrets, Unset):
            secrets = self.secrets

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "runtime": runtime,
            }
        )
        if code is not UNSET:
            field_dict["code"] = code
        if code_archive is not UNSET:
            field_dict["code_archive"] = code_archive
        if command is not UNSET:
            field_dict["command"] = command
        if env is not UNSET:
            field_dict["env"] = env
        if image is not UNSET:
            field_dict["image"] = image
        if isolation is not UNSET:
            field_dict["isolation"] = isolation
        if network is not UNSET:
            field_dict["network"] = network
        if resources is not UNSET:
            field_dict["resources"] = resources
        if secrets is not UNSET:
            field_dict["secrets"] = secrets

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.code_body_env import CodeBodyEnv
        from ..models.network_policy import NetworkPolicy
        from ..models.resources_body import ResourcesBody

        d = dict(src_dict)
        runtime = check_runtime(d.pop("runtime"))

        def _parse_code(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        code = _parse_code(d.pop("code", UNSET))

        def _parse_code_archive(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        code_archive = _parse_code_archive(d.pop("code_archive", UNSET))

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
        env: CodeBodyEnv | Unset
        if isinstance(_env, Unset):
            env = UNSET
        else:
            env = CodeBodyEnv.from_dict(_env)

        def _parse_image(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        image = _parse_image(d.pop("image", UNSET))

        def _parse_isolation(data: object) -> Isolation | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                isolation_type_0 = check_isolation(data)

                return isolation_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(Isolation | None | Unset, data)

        isolation = _parse_isolation(d.pop("isolation", UNSET))

        _network = d.pop("network", UNSET)
        network: NetworkPolicy | Unset
        if isinstance(_network, Unset):
            network = UNSET
        else:
            network = NetworkPolicy.from_dict(_network)

        _resources = d.pop("resources", UNSET)
        resources: ResourcesBody | Unset
        if isinstance(_resources, Unset):
            resources = UNSET
        else:
            resources = ResourcesBody.from_dict(_resources)

        secrets = cast(list[str], d.pop("secrets", UNSET))

        code_body = cls(
            runtime=runtime,
            code=code,
            code_archive=code_archive,
            command=command,
            env=env,
            image=image,
            isolation=isolation,
            network=network,
            resources=resources,
            secrets=secrets,
        )

        code_body.additional_properties = d
        return code_body

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

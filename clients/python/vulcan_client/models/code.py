from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.isolation import Isolation, check_isolation
from ..models.runtime import Runtime, check_runtime
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.code_env import CodeEnv
    from ..models.network_policy import NetworkPolicy
    from ..models.resources import Resources


T = TypeVar("T", bound="Code")


@_attrs_define
class Code:
    """What runs, and with what.

    Attributes:
        isolation (Isolation): How a workload is isolated from the host. `Auto` only appears in requests: a stored
            workload always carries the isolation that was actually used.
        resources (Resources): Resource limits of one workload, already validated against the server's limits.
        runtime (Runtime): The language runtime a workload is written for.
        code (None | str | Unset): Source text: a module, a script, or base64 for `wasm`.
        command (list[str] | None | Unset):
        env (CodeEnv | Unset):
        image (None | str | Unset):
        network (NetworkPolicy | Unset): A workload's network policy, as it asked for it.
        secrets (list[str] | Unset): Secrets (by name) the code gets as environment variables; their values are added
            by the node that runs it, never stored with it.
    """

    isolation: Isolation
    resources: Resources
    runtime: Runtime
    code: None | str | Unset = UNSET
    command: list[str] | None | Unset = UNSET
    env: CodeEnv | Unset = UNSET
    image: None | str | Unset = UNSET
    network: NetworkPolicy | Unset = UNSET
    secrets: list[str] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        isolation: str = self.isolation

        resources = self.resources.to_dict()

        runtime: str = self.runtime

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

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "isolation": isolation,
                "resources": resources,
                "runtime": runtime,
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

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.code_env import CodeEnv
        from ..models.network_policy import NetworkPolicy
        from ..models.resources import Resources

        d = dict(src_dict)
        isolation = check_isolation(d.pop("isolation"))

        resources = Resources.from_dict(d.pop("resources"))

        runtime = check_runtime(d.pop("runtime"))

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

        code = cls(
            isolation=isolation,
            resources=resources,
            runtime=runtime,
            code=code,
            command=command,
            env=env,
            image=image,
            network=network,
            secrets=secrets,
        )

        code.additional_properties = d
        return code

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

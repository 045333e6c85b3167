from __future__ import annotations

import datetime
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
    from ..models.queue_trigger import QueueTrigger
    from ..models.resources import Resources


T = TypeVar("T", bound="Deployed")


@_attrs_define
class Deployed:
    """
    Attributes:
        isolation (Isolation): How a workload is isolated from the host. `Auto` only appears in requests: a stored
            workload always carries the isolation that was actually used.
        resources (Resources): Resource limits of one workload, already validated against the server's limits.
        runtime (Runtime): The language runtime a workload is written for.
        idle_timeout_s (int): An idle instance is stopped after this long.
        max_instances (int): Instances at once, per node.
        public (bool): Its HTTP trigger needs no key.
        reuse (bool): Serve invocations from warm instances (false: a fresh one each time).
        created_at (datetime.datetime):
        digest (str): SHA-256 of what runs (code, archive, image, command, env, secrets' names, runtime).
        name (str):
        tenant (str):
        version (int):
        changed (bool): False when the content was identical to the active version's (nothing new).
        code (None | str | Unset): Source text: a module, a script, or base64 for `wasm`.
        command (list[str] | None | Unset):
        env (CodeEnv | Unset):
        image (None | str | Unset):
        network (NetworkPolicy | Unset): A workload's network policy, as it asked for it.
        secrets (list[str] | Unset): Secrets (by name) the code gets as environment variables; their values are added
            by the node that runs it, never stored with it.
        triggers (list[QueueTrigger] | Unset): Queues whose messages it is invoked with, in batches.
        code_archive_bytes (int | None | Unset):
    """

    isolation: Isolation
    resources: Resources
    runtime: Runtime
    idle_timeout_s: int
    max_instances: int
    public: bool
    reuse: bool
    created_at: datetime.datetime
    digest: str
    name: str
    tenant: str
    version: int
    changed: bool
    code: None | str | Unset = UNSET
    command: list[str] | None | Unset = UNSET
    env: CodeEnv | Unset = UNSET
    image: None | str | Unset = UNSET
    network: NetworkPolicy | Unset = UNSET
    secrets: list[str] | Unset = UNSET
    triggers: list[QueueTrigger] | Unset = UNSET
    code_archive_bytes: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        isolation: str = self.isolation

        resources = self.resources.to_dict()

        runtime: str = self.runtime

        idle_timeout_s = self.idle_timeout_s

        max_instances = self.max_instances

        public = self.public

        reuse = self.reuse

        created_at = self.created_at.isoformat()

        digest = self.digest

        name = self.name

        tenant = self.tenant

        version = self.version

        changed = self.changed

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

        triggers: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.triggers, Unset):
            triggers = []
            for triggers_item_data in self.triggers:
                triggers_item = triggers_item_data.to_dict()
                triggers.append(triggers_item)

        code_archive_bytes: int | None | Unset
        if isinstance(self.code_archive_bytes, Unset):
            code_archive_bytes = UNSET
        else:
            code_archive_bytes = self.code_archive_bytes

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "isolation": isolation,
                "resources": resources,
                "runtime": runtime,
                "idle_timeout_s": idle_timeout_s,
                "max_instances": max_instances,
                "public": public,
                "reuse": reuse,
                "created_at": created_at,
                "digest": digest,
                "name": name,
                "tenant": tenant,
                "version": version,
                "changed": changed,
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
        if triggers is not UNSET:
            field_dict["triggers"] = triggers
        if code_archive_bytes is not UNSET:
            field_dict["code_archive_bytes"] = code_archive_bytes

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.code_env import CodeEnv
        from ..models.network_policy import NetworkPolicy
        from ..models.queue_trigger import QueueTrigger
        from ..models.resources import Resources

        d = dict(src_dict)
        isolation = check_isolation(d.pop("isolation"))

        resources = Resources.from_dict(d.pop("resources"))

        runtime = check_runtime(d.pop("runtime"))

        idle_timeout_s = d.pop("idle_timeout_s")

        max_instances = d.pop("max_instances")

        public = d.pop("public")

        reuse = d.pop("reuse")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        digest = d.pop("digest")

        name = d.pop("name")

        tenant = d.pop("tenant")

        version = d.pop("version")

        changed = d.pop("changed")

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

        _triggers = d.pop("triggers", UNSET)
        triggers: list[QueueTrigger] | Unset = UNSET
        if _triggers is not UNSET:
            triggers = []
            for triggers_item_data in _triggers:
                triggers_item = QueueTrigger.from_dict(triggers_item_data)

                triggers.append(triggers_item)

        def _parse_code_archive_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        code_archive_bytes = _parse_code_archive_bytes(
            d.pop("code_archive_bytes", UNSET)
        )

        deployed = cls(
            isolation=isolation,
            resources=resources,
            runtime=runtime,
            idle_timeout_s=idle_timeout_s,
            max_instances=max_instances,
            public=public,
            reuse=reuse,
            created_at=created_at,
            digest=digest,
            name=name,
            tenant=tenant,
            version=version,
            changed=changed,
            code=code,
            command=command,
            env=env,
            image=image,
            network=network,
            secrets=secrets,
            triggers=triggers,
            code_archive_bytes=code_archive_bytes,
        )

        deployed.additional_properties = d
        return deployed

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

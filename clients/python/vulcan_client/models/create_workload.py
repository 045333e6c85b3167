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
    from ..models.on_failure import OnFailure
    from ..models.resources_body import ResourcesBody
    from ..models.retry import Retry
    from ..models.volume_mount import VolumeMount


T = TypeVar("T", bound="CreateWorkload")


@_attrs_define
class CreateWorkload:
    """The body of `POST /v1/workloads` and `POST /v1/workloads/async`: what to run, and its
    input.

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
            callback_url (None | str | Unset): POSTed the final workload's JSON when it has ended for good, signed with the
                tenant's secret `CALLBACK_SIGNING_KEY` (header `X-Vulcan-Signature: t=<unix
                seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`), retried with backoff until it
                answers 2xx.
            max_age_s (int | None | Unset): No attempt starts (and none waits in the queue) later than this many seconds
                after
                the request: one still waiting then fails, and no retry follows.
            on_failure (None | OnFailure | Unset):
            retry (None | Retry | Unset):
            input_ (Any | Unset):
            volumes (list[VolumeMount] | Unset): The tenant's volumes to mount (gvisor and microvm; at most 8): the workload
                runs on
                their node and holds them until it ends (a read-write mount beside any other mount
                of the volume is refused with 409).
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
    callback_url: None | str | Unset = UNSET
    max_age_s: int | None | Unset = UNSET
    on_failure: None | OnFailure | Unset = UNSET
    retry: None | Retry | Unset = UNSET
    input_: Any | Unset = UNSET
    volumes: list[VolumeMount] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.on_failure import OnFailure
        from ..models.retry import Retry

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

        callback_url: None | str | Unset
        if isinstance(self.callback_url, Unset):
            callback_url = UNSET
        else:
            callback_url = self.callback_url

        max_age_s: int | None | Unset
        if isinstance(self.max_age_s, Unset):
            max_age_s = UNSET
        else:
            max_age_s = self.max_age_s

        on_failure: dict[str, Any] | None | Unset
        if isinstance(self.on_failure, Unset):
            on_failure = UNSET
        elif isinstance(self.on_failure, OnFailure):
            on_failure = self.on_failure.to_dict()
        else:
            on_failure = self.on_failure

        retry: dict[str, Any] | None | Unset
        if isinstance(self.retry, Unset):
            retry = UNSET
        elif isinstance(self.retry, Retry):
            retry = self.retry.to_dict()
        else:
            retry = self.retry

        input_ = self.input_

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
        if callback_url is not UNSET:
            field_dict["callback_url"] = callback_url
        if max_age_s is not UNSET:
            field_dict["max_age_s"] = max_age_s
        if on_failure is not UNSET:
            field_dict["on_failure"] = on_failure
        if retry is not UNSET:
            field_dict["retry"] = retry
        if input_ is not UNSET:
            field_dict["input"] = input_
        if volumes is not UNSET:
            field_dict["volumes"] = volumes

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.code_body_env import CodeBodyEnv
        from ..models.network_policy import NetworkPolicy
        from ..models.on_failure import OnFailure
        from ..models.resources_body import ResourcesBody
        from ..models.retry import Retry
        from ..models.volume_mount import VolumeMount

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

        def _parse_callback_url(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        callback_url = _parse_callback_url(d.pop("callback_url", UNSET))

        def _parse_max_age_s(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_age_s = _parse_max_age_s(d.pop("max_age_s", UNSET))

        def _parse_on_failure(data: object) -> None | OnFailure | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                on_failure_type_0 = OnFailure.from_dict(data)

                return on_failure_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | OnFailure | Unset, data)

        on_failure = _parse_on_failure(d.pop("on_failure", UNSET))

        def _parse_retry(data: object) -> None | Retry | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                retry_type_0 = Retry.from_dict(data)

                return retry_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Retry | Unset, data)

        retry = _parse_retry(d.pop("retry", UNSET))

        input_ = d.pop("input", UNSET)

        _volumes = d.pop("volumes", UNSET)
        volumes: list[VolumeMount] | Unset = UNSET
        if _volumes is not UNSET:
            volumes = []
            for volumes_item_data in _volumes:
                volumes_item = VolumeMount.from_dict(volumes_item_data)

                volumes.append(volumes_item)

        create_workload = cls(
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
            callback_url=callback_url,
            max_age_s=max_age_s,
            on_failure=on_failure,
            retry=retry,
            input_=input_,
            volumes=volumes,
        )

        create_workload.additional_properties = d
        return create_workload

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

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.isolation import Isolation, check_isolation
from ..models.runtime import Runtime, check_runtime
from ..models.workload_status import WorkloadStatus, check_workload_status
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.trigger import Trigger


T = TypeVar("T", bound="Workload")


@_attrs_define
class Workload:
    """One submitted piece of code and everything known about its run.

    Attributes:
        cpu_limit (int):
        created_at (datetime.datetime):
        id (str): A ULID: sortable by creation time.
        input_hash (str): SHA-256 of the code, archive, image, command and input, hex-encoded.
        isolation (Isolation): How a workload is isolated from the host. `Auto` only appears in requests: a stored
            workload always carries the isolation that was actually used.
        mem_limit (int): Memory limit in MiB.
        requested_isolation (Isolation): How a workload is isolated from the host. `Auto` only appears in requests: a
            stored
            workload always carries the isolation that was actually used.
        runtime (Runtime): The language runtime a workload is written for.
        status (WorkloadStatus): Where a workload is in its life.
        timeout_s (int):
        cpu_time_ms (int | None | Unset): CPU time the run used, in ms (where the backend measured it).
        duration_ms (int | None | Unset): Wall time from `running` to the end, in ms; `None` if it never ran.
        error (None | str | Unset):
        exit_code (int | None | Unset):
        finished_at (datetime.datetime | None | Unset):
        function (None | str | Unset): The function it is an invocation of, and which version.
        function_version (int | None | Unset):
        max_processes (int | None | Unset): Most processes at once, where the backend can tell.
        net_rx_bytes (int | None | Unset):
        net_tx_bytes (int | None | Unset): Bytes sent and received over the network, for a workload that had one.
        node_id (None | str | Unset): The node that claimed and ran it; `None` while it waits in the queue.
        output (None | str | Unset):
        peak_memory_bytes (int | None | Unset): The run's peak memory, in bytes.
        prepare_ms (int | None | Unset): The part of `duration_ms` spent preparing the run (booting a VM, pulling an
            image,
            starting a process) before the code started; the timeout counts after it.
        request_id (None | str | Unset): The id of the API request that created it.
        started_at (datetime.datetime | None | Unset):
        tenant (str | Unset): The tenant whose key submitted it (`default` when auth is off).
        trace_id (None | str | Unset): The trace it is part of (32 hex digits), when traces are exported.
        trigger (None | Trigger | Unset):
    """

    cpu_limit: int
    created_at: datetime.datetime
    id: str
    input_hash: str
    isolation: Isolation
    mem_limit: int
    requested_isolation: Isolation
    runtime: Runtime
    status: WorkloadStatus
    timeout_s: int
    cpu_time_ms: int | None | Unset = UNSET
    duration_ms: int | None | Unset = UNSET
    error: None | str | Unset = UNSET
    exit_code: int | None | Unset = UNSET
    finished_at: datetime.datetime | None | Unset = UNSET
    function: None | str | Unset = UNSET
    function_version: int | None | Unset = UNSET
    max_processes: int | None | Unset = UNSET
    net_rx_bytes: int | None | Unset = UNSET
    net_tx_bytes: int | None | Unset = UNSET
    node_id: None | str | Unset = UNSET
    output: None | str | Unset = UNSET
    peak_memory_bytes: int | None | Unset = UNSET
    prepare_ms: int | None | Unset = UNSET
    request_id: None | str | Unset = UNSET
    started_at: datetime.datetime | None | Unset = UNSET
    tenant: str | Unset = UNSET
    trace_id: None | str | Unset = UNSET
    trigger: None | Trigger | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.trigger import Trigger

        cpu_limit = self.cpu_limit

        created_at = self.created_at.isoformat()

        id = self.id

        input_hash = self.input_hash

        isolation: str = self.isolation

        mem_limit = self.mem_limit

        requested_isolation: str = self.requested_isolation

        runtime: str = self.runtime

        status: str = self.status

        timeout_s = self.timeout_s

        cpu_time_ms: int | None | Unset
        if isinstance(self.cpu_time_ms, Unset):
            cpu_time_ms = UNSET
        else:
            cpu_time_ms = self.cpu_time_ms

        duration_ms: int | None | Unset
        if isinstance(self.duration_ms, Unset):
            duration_ms = UNSET
        else:
            duration_ms = self.duration_ms

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        exit_code: int | None | Unset
        if isinstance(self.exit_code, Unset):
            exit_code = UNSET
        else:
            exit_code = self.exit_code

        finished_at: None | str | Unset
        if isinstance(self.finished_at, Unset):
            finished_at = UNSET
        elif isinstance(self.finished_at, datetime.datetime):
            finished_at = self.finished_at.isoformat()
        else:
            finished_at = self.finished_at

        function: None | str | Unset
        if isinstance(self.function, Unset):
            function = UNSET
        else:
            function = self.function

        function_version: int | None | Unset
        if isinstance(self.function_version, Unset):
            function_version = UNSET
        else:
            function_version = self.function_version

        max_processes: int | None | Unset
        if isinstance(self.max_processes, Unset):
            max_processes = UNSET
        else:
            max_processes = self.max_processes

        net_rx_bytes: int | None | Unset
        if isinstance(self.net_rx_bytes, Unset):
            net_rx_bytes = UNSET
        else:
            net_rx_bytes = self.net_rx_bytes

        net_tx_bytes: int | None | Unset
        if isinstance(self.net_tx_bytes, Unset):
            net_tx_bytes = UNSET
        else:
            net_tx_bytes = self.net_tx_bytes

        node_id: None | str | Unset
        if isinstance(self.node_id, Unset):
            node_id = UNSET
        else:
            node_id = self.node_id

        output: None | str | Unset
        if isinstance(self.output, Unset):
            output = UNSET
        else:
            output = self.output

        peak_memory_bytes: int | None | Unset
        if isinstance(self.peak_memory_bytes, Unset):
            peak_memory_bytes = UNSET
        else:
            peak_memory_bytes = self.peak_memory_bytes

        prepare_ms: int | None | Unset
        if isinstance(self.prepare_ms, Unset):
            prepare_ms = UNSET
        else:
            prepare_ms = self.prepare_ms

        request_id: None | str | Unset
        if isinstance(self.request_id, Unset):
            request_id = UNSET
        else:
            request_id = self.request_id

        started_at: None | str | Unset
        if isinstance(self.started_at, Unset):
            started_at = UNSET
        elif isinstance(self.started_at, datetime.datetime):
            started_at = self.started_at.isoformat()
        else:
            started_at = self.started_at

        tenant = self.tenant

        trace_id: None | str | Unset
        if isinstance(self.trace_id, Unset):
            trace_id = UNSET
        else:
            trace_id = self.trace_id

        trigger: dict[str, Any] | None | Unset
        if isinstance(self.trigger, Unset):
            trigger = UNSET
        elif isinstance(self.trigger, Trigger):
            trigger = self.trigger.to_dict()
        else:
            trigger = self.trigger

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "cpu_limit": cpu_limit,
                "created_at": created_at,
                "id": id,
                "input_hash": input_hash,
                "isolation": isolation,
                "mem_limit": mem_limit,
                "requested_isolation": requested_isolation,
                "runtime": runtime,
                "status": status,
                "timeout_s": timeout_s,
            }
        )
        if cpu_time_ms is not UNSET:
            field_dict["cpu_time_ms"] = cpu_time_ms
        if duration_ms is not UNSET:
            field_dict["duration_ms"] = duration_ms
        if error is not UNSET:
            field_dict["error"] = error
        if exit_code is not UNSET:
            field_dict["exit_code"] = exit_code
        if finished_at is not UNSET:
            field_dict["finished_at"] = finished_at
        if function is not UNSET:
            field_dict["function"] = function
        if function_version is not UNSET:
            field_dict["function_version"] = function_version
        if max_processes is not UNSET:
            field_dict["max_processes"] = max_processes
        if net_rx_bytes is not UNSET:
            field_dict["net_rx_bytes"] = net_rx_bytes
        if net_tx_bytes is not UNSET:
            field_dict["net_tx_bytes"] = net_tx_bytes
        if node_id is not UNSET:
            field_dict["node_id"] = node_id
        if output is not UNSET:
            field_dict["output"] = output
        if peak_memory_bytes is not UNSET:
            field_dict["peak_memory_bytes"] = peak_memory_bytes
        if prepare_ms is not UNSET:
            field_dict["prepare_ms"] = prepare_ms
        if request_id is not UNSET:
            field_dict["request_id"] = request_id
        if started_at is not UNSET:
            field_dict["started_at"] = started_at
        if tenant is not UNSET:
            field_dict["tenant"] = tenant
        if trace_id is not UNSET:
            field_dict["trace_id"] = trace_id
        if trigger is not UNSET:
            field_dict["trigger"] = trigger

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.trigger import Trigger

        d = dict(src_dict)
        cpu_limit = d.pop("cpu_limit")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        id = d.pop("id")

        input_hash = d.pop("input_hash")

        isolation = check_isolation(d.pop("isolation"))

        mem_limit = d.pop("mem_limit")

        requested_isolation = check_isolation(d.pop("requested_isolation"))

        runtime = check_runtime(d.pop("runtime"))

        status = check_workload_status(d.pop("status"))

        timeout_s = d.pop("timeout_s")

        def _parse_cpu_time_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        cpu_time_ms = _parse_cpu_time_ms(d.pop("cpu_time_ms", UNSET))

        def _parse_duration_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        duration_ms = _parse_duration_ms(d.pop("duration_ms", UNSET))

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        def _parse_exit_code(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        exit_code = _parse_exit_code(d.pop("exit_code", UNSET))

        def _parse_finished_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                finished_at_type_0 = datetime.datetime.fromisoformat(data)

                return finished_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        finished_at = _parse_finished_at(d.pop("finished_at", UNSET))

        def _parse_function(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        function = _parse_function(d.pop("function", UNSET))

        def _parse_function_version(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        function_version = _parse_function_version(d.pop("function_version", UNSET))

        def _parse_max_processes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_processes = _parse_max_processes(d.pop("max_processes", UNSET))

        def _parse_net_rx_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        net_rx_bytes = _parse_net_rx_bytes(d.pop("net_rx_bytes", UNSET))

        def _parse_net_tx_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        net_tx_bytes = _parse_net_tx_bytes(d.pop("net_tx_bytes", UNSET))

        def _parse_node_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        node_id = _parse_node_id(d.pop("node_id", UNSET))

        def _parse_output(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        output = _parse_output(d.pop("output", UNSET))

        def _parse_peak_memory_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        peak_memory_bytes = _parse_peak_memory_bytes(d.pop("peak_memory_bytes", UNSET))

        def _parse_prepare_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        prepare_ms = _parse_prepare_ms(d.pop("prepare_ms", UNSET))

        def _parse_request_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        request_id = _parse_request_id(d.pop("request_id", UNSET))

        def _parse_started_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                started_at_type_0 = datetime.datetime.fromisoformat(data)

                return started_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        started_at = _parse_started_at(d.pop("started_at", UNSET))

        tenant = d.pop("tenant", UNSET)

        def _parse_trace_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        trace_id = _parse_trace_id(d.pop("trace_id", UNSET))

        def _parse_trigger(data: object) -> None | Trigger | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                trigger_type_0 = Trigger.from_dict(data)

                return trigger_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Trigger | Unset, data)

        trigger = _parse_trigger(d.pop("trigger", UNSET))

        workload = cls(
            cpu_limit=cpu_limit,
            created_at=created_at,
            id=id,
            input_hash=input_hash,
            isolation=isolation,
            mem_limit=mem_limit,
            requested_isolation=requested_isolation,
            runtime=runtime,
            status=status,
            timeout_s=timeout_s,
            cpu_time_ms=cpu_time_ms,
            duration_ms=duration_ms,
            error=error,
            exit_code=exit_code,
            finished_at=finished_at,
            function=function,
            function_version=function_version,
            max_processes=max_processes,
            net_rx_bytes=net_rx_bytes,
            net_tx_bytes=net_tx_bytes,
            node_id=node_id,
            output=output,
            peak_memory_bytes=peak_memory_bytes,
            prepare_ms=prepare_ms,
            request_id=request_id,
            started_at=started_at,
            tenant=tenant,
            trace_id=trace_id,
            trigger=trigger,
        )

        workload.additional_properties = d
        return workload

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

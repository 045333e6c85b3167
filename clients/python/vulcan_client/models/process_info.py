from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.pty_size import PtySize


T = TypeVar("T", bound="ProcessInfo")


@_attrs_define
class ProcessInfo:
    """One process, as the API shows it.

    Attributes:
        cmd (list[str]): The program and its arguments.
        output_bytes (int): Bytes of output written so far (stdout and stderr): the offset a watch reaches.
        pid (int): Its pid inside the sandbox.
        started_at (datetime.datetime):
        state (str): `running` or `exited`.
        timed_out (bool): Whether its `timeout_s` passed (it was killed then).
        cwd (None | str | Unset):
        ended_at (datetime.datetime | None | Unset):
        exit_code (int | None | Unset):
        pty (None | PtySize | Unset):
        signal (int | None | Unset): The signal that ended it, if one did.
        tag (None | str | Unset): The name it was started with, if any.
    """

    cmd: list[str]
    output_bytes: int
    pid: int
    started_at: datetime.datetime
    state: str
    timed_out: bool
    cwd: None | str | Unset = UNSET
    ended_at: datetime.datetime | None | Unset = UNSET
    exit_code: int | None | Unset = UNSET
    pty: None | PtySize | Unset = UNSET
    signal: int | None | Unset = UNSET
    tag: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.pty_size import PtySize

        cmd = self.cmd

        output_bytes = self.output_bytes

        pid = self.pid

        started_at = self.started_at.isoformat()

        state = self.state

        timed_out = self.timed_out

        cwd: None | str | Unset
        if isinstance(self.cwd, Unset):
            cwd = UNSET
        else:
            cwd = self.cwd

        ended_at: None | str | Unset
        if isinstance(self.ended_at, Unset):
            ended_at = UNSET
        elif isinstance(self.ended_at, datetime.datetime):
            ended_at = self.ended_at.isoformat()
        else:
            ended_at = self.ended_at

        exit_code: int | None | Unset
        if isinstance(self.exit_code, Unset):
            exit_code = UNSET
        else:
            exit_code = self.exit_code

        pty: dict[str, Any] | None | Unset
        if isinstance(self.pty, Unset):
            pty = UNSET
        elif isinstance(self.pty, PtySize):
            pty = self.pty.to_dict()
        else:
            pty = self.pty

        signal: int | None | Unset
        if isinstance(self.signal, Unset):
            signal = UNSET
        else:
            signal = self.signal

        tag: None | str | Unset
        if isinstance(self.tag, Unset):
            tag = UNSET
        else:
            tag = self.tag

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "cmd": cmd,
                "output_bytes": output_bytes,
                "pid": pid,
                "started_at": started_at,
                "state": state,
                "timed_out": timed_out,
            }
        )
        if cwd is not UNSET:
            field_dict["cwd"] = cwd
        if ended_at is not UNSET:
            field_dict["ended_at"] = ended_at
        if exit_code is not UNSET:
            field_dict["exit_code"] = exit_code
        if pty is not UNSET:
            field_dict["pty"] = pty
        if signal is not UNSET:
            field_dict["signal"] = signal
        if tag is not UNSET:
            field_dict["tag"] = tag

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.pty_size import PtySize

        d = dict(src_dict)
        cmd = cast(list[str], d.pop("cmd"))

        output_bytes = d.pop("output_bytes")

        pid = d.pop("pid")

        started_at = datetime.datetime.fromisoformat(d.pop("started_at"))

        state = d.pop("state")

        timed_out = d.pop("timed_out")

        def _parse_cwd(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        cwd = _parse_cwd(d.pop("cwd", UNSET))

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

        def _parse_exit_code(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        exit_code = _parse_exit_code(d.pop("exit_code", UNSET))

        def _parse_pty(data: object) -> None | PtySize | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                pty_type_0 = PtySize.from_dict(data)

                return pty_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | PtySize | Unset, data)

        pty = _parse_pty(d.pop("pty", UNSET))

        def _parse_signal(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        signal = _parse_signal(d.pop("signal", UNSET))

        def _parse_tag(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        tag = _parse_tag(d.pop("tag", UNSET))

        process_info = cls(
            cmd=cmd,
            output_bytes=output_bytes,
            pid=pid,
            started_at=started_at,
            state=state,
            timed_out=timed_out,
            cwd=cwd,
            ended_at=ended_at,
            exit_code=exit_code,
            pty=pty,
            signal=signal,
            tag=tag,
        )

        process_info.additional_properties = d
        return process_info

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

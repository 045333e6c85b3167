from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.log_stream import LogStream, check_log_stream

T = TypeVar("T", bound="LogLine")


@_attrs_define
class LogLine:
    """One line of a workload's log, numbered from 1 in the order it was produced.

    Attributes:
        created_at (datetime.datetime):
        line (str):
        seq (int):
        stream (LogStream): Where a log line came from: the workload's own output, or the backend running it
            (pulling an image, booting a VM, a sandbox error).
    """

    created_at: datetime.datetime
    line: str
    seq: int
    stream: LogStream
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at.isoformat()

        line = self.line

        seq = self.seq

        stream: str = self.stream

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "created_at": created_at,
                "line": line,
                "seq": seq,
                "stream": stream,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        line = d.pop("line")

        seq = d.pop("seq")

        stream = check_log_stream(d.pop("stream"))

        log_line = cls(
            created_at=created_at,
            line=line,
            seq=seq,
            stream=stream,
        )

        log_line.additional_properties = d
        return log_line

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

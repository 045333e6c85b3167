from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="SseProcessEvent")


@_attrs_define
class SseProcessEvent:
    """One server-sent event of `GET …/processes/{pid}/output`: `stdout`/`stderr` (data
    `{"offset", "data"}`, the bytes base64-encoded; the event's id is the offset just
    past them, where a reconnect resumes), `skipped` (`{"from", "to"}`: output no longer
    kept), then `exit` (`{"exit_code", "signal"}`).

        Attributes:
            data (str):
            event (str):
            id (str | Unset):
    """

    data: str
    event: str
    id: str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = self.data

        event = self.event

        id = self.id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "data": data,
                "event": event,
            }
        )
        if id is not UNSET:
            field_dict["id"] = id

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        data = d.pop("data")

        event = d.pop("event")

        id = d.pop("id", UNSET)

        sse_process_event = cls(
            data=data,
            event=event,
            id=id,
        )

        sse_process_event.additional_properties = d
        return sse_process_event

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

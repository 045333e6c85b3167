from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..models.overlap import Overlap, check_overlap
from ..models.time_zone import TimeZone, check_time_zone
from ..types import UNSET, Unset

T = TypeVar("T", bound="ScheduleRequest")


@_attrs_define
class ScheduleRequest:
    """`POST /v1/schedules`.

    Attributes:
        cron (str):
        function (str):
        enabled (bool | Unset):
        input_ (Any | Unset):
        overlap (None | Overlap | Unset):
        timezone (TimeZone | Unset): An IANA time zone name.
    """

    cron: str
    function: str
    enabled: bool | Unset = UNSET
    input_: Any | Unset = UNSET
    overlap: None | Overlap | Unset = UNSET
    timezone: TimeZone | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        cron = self.cron

        function = self.function

        enabled = self.enabled

        input_ = self.input_

        overlap: None | str | Unset
        if isinstance(self.overlap, Unset):
            overlap = UNSET
        elif isinstance(self.overlap, str):
            overlap = self.overlap
        else:
            overlap = self.overlap

        timezone: str | Unset = UNSET
        if not isinstance(self.timezone, Unset):
            timezone = self.timezone

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "cron": cron,
                "function": function,
            }
        )
        if enabled is not UNSET:
            field_dict["enabled"] = enabled
        if input_ is not UNSET:
            field_dict["input"] = input_
        if overlap is not UNSET:
            field_dict["overlap"] = overlap
        if timezone is not UNSET:
            field_dict["timezone"] = timezone

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        cron = d.pop("cron")

        function = d.pop("function")

        enabled = d.pop("enabled", UNSET)

        input_ = d.pop("input", UNSET)

        def _parse_overlap(data: object) -> None | Overlap | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                overlap_type_0 = check_overlap(data)

                return overlap_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Overlap | Unset, data)

        overlap = _parse_overlap(d.pop("overlap", UNSET))

        _timezone = d.pop("timezone", UNSET)
        timezone: TimeZone | Unset
        if isinstance(_timezone, Unset):
            timezone = UNSET
        else:
            timezone = check_time_zone(_timezone)

        schedule_request = cls(
            cron=cron,
            function=function,
            enabled=enabled,
            input_=input_,
            overlap=overlap,
            timezone=timezone,
        )

        return schedule_request

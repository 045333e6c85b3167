from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.overlap import Overlap, check_overlap
from ..types import UNSET, Unset

T = TypeVar("T", bound="Schedule")


@_attrs_define
class Schedule:
    """A function fired on a cron.

    Attributes:
        created_at (datetime.datetime):
        cron (str): Five fields, or six with seconds first.
        enabled (bool):
        function (str):
        id (str):
        overlap (Overlap): What a tick does while the previous run of the same schedule is still going.
        skipped_ticks (int): Ticks that started nothing (the previous run still going, a quota), the last one's
            time and why.
        tenant (str):
        timezone (str): IANA name; ticks are computed in it.
        updated_at (datetime.datetime):
        input_ (Any | Unset):
        last_run_at (datetime.datetime | None | Unset): The last tick that started a run, and that run.
        last_skip_reason (None | str | Unset):
        last_skipped_at (datetime.datetime | None | Unset):
        last_workload_id (None | str | Unset):
        next_run_at (datetime.datetime | None | Unset): The next tick (`None` while disabled).
    """

    created_at: datetime.datetime
    cron: str
    enabled: bool
    function: str
    id: str
    overlap: Overlap
    skipped_ticks: int
    tenant: str
    timezone: str
    updated_at: datetime.datetime
    input_: Any | Unset = UNSET
    last_run_at: datetime.datetime | None | Unset = UNSET
    last_skip_reason: None | str | Unset = UNSET
    last_skipped_at: datetime.datetime | None | Unset = UNSET
    last_workload_id: None | str | Unset = UNSET
    next_run_at: datetime.datetime | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at.isoformat()

        cron = self.cron

        enabled = self.enabled

        function = self.function

        id = self.id

        overlap: str = self.overlap

        skipped_ticks = self.skipped_ticks

        tenant = self.tenant

        timezone = self.timezone

        updated_at = self.updated_at.isoformat()

        input_ = self.input_

        last_run_at: None | str | Unset
        if isinstance(self.last_run_at, Unset):
            last_run_at = UNSET
        elif isinstance(self.last_run_at, datetime.datetime):
            last_run_at = self.last_run_at.isoformat()
        else:
            last_run_at = self.last_run_at

        last_skip_reason: None | str | Unset
        if isinstance(self.last_skip_reason, Unset):
            last_skip_reason = UNSET
        else:
            last_skip_reason = self.last_skip_reason

        last_skipped_at: None | str | Unset
        if isinstance(self.last_skipped_at, Unset):
            last_skipped_at = UNSET
        elif isinstance(self.last_skipped_at, datetime.datetime):
            last_skipped_at = self.last_skipped_at.isoformat()
        else:
            last_skipped_at = self.last_skipped_at

        last_workload_id: None | str | Unset
        if isinstance(self.last_workload_id, Unset):
            last_workload_id = UNSET
        else:
            last_workload_id = self.last_workload_id

        next_run_at: None | str | Unset
        if isinstance(self.next_run_at, Unset):
            next_run_at = UNSET
        elif isinstance(self.next_run_at, datetime.datetime):
            next_run_at = self.next_run_at.isoformat()
        else:
            next_run_at = self.next_run_at

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "created_at": created_at,
                "cron": cron,
                "enabled": enabled,
                "function": function,
                "id": id,
                "overlap": overlap,
                "skipped_ticks": skipped_ticks,
                "tenant": tenant,
                "timezone": timezone,
                "updated_at": updated_at,
            }
        )
        if input_ is not UNSET:
            field_dict["input"] = input_
        if last_run_at is not UNSET:
            field_dict["last_run_at"] = last_run_at
        if last_skip_reason is not UNSET:
            field_dict["last_skip_reason"] = last_skip_reason
        if last_skipped_at is not UNSET:
            field_dict["last_skipped_at"] = last_skipped_at
        if last_workload_id is not UNSET:
            field_dict["last_workload_id"] = last_workload_id
        if next_run_at is not UNSET:
            field_dict["next_run_at"] = next_run_at

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        cron = d.pop("cron")

        enabled = d.pop("enabled")

        function = d.pop("function")

        id = d.pop("id")

        overlap = check_overlap(d.pop("overlap"))

        skipped_ticks = d.pop("skipped_ticks")

        tenant = d.pop("tenant")

        timezone = d.pop("timezone")

        updated_at = datetime.datetime.fromisoformat(d.pop("updated_at"))

        input_ = d.pop("input", UNSET)

        def _parse_last_run_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                last_run_at_type_0 = datetime.datetime.fromisoformat(data)

                return last_run_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        last_run_at = _parse_last_run_at(d.pop("last_run_at", UNSET))

        def _parse_last_skip_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        last_skip_reason = _parse_last_skip_reason(d.pop("last_skip_reason", UNSET))

        def _parse_last_skipped_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                last_skipped_at_type_0 = datetime.datetime.fromisoformat(data)

                return last_skipped_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        last_skipped_at = _parse_last_skipped_at(d.pop("last_skipped_at", UNSET))

        def _parse_last_workload_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        last_workload_id = _parse_last_workload_id(d.pop("last_workload_id", UNSET))

        def _parse_next_run_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                next_run_at_type_0 = datetime.datetime.fromisoformat(data)

                return next_run_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        next_run_at = _parse_next_run_at(d.pop("next_run_at", UNSET))

        schedule = cls(
            created_at=created_at,
            cron=cron,
            enabled=enabled,
            function=function,
            id=id,
            overlap=overlap,
            skipped_ticks=skipped_ticks,
            tenant=tenant,
            timezone=timezone,
            updated_at=updated_at,
            input_=input_,
            last_run_at=last_run_at,
            last_skip_reason=last_skip_reason,
            last_skipped_at=last_skipped_at,
            last_workload_id=last_workload_id,
            next_run_at=next_run_at,
        )

        schedule.additional_properties = d
        return schedule

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

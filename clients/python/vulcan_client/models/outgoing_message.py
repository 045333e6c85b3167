from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="OutgoingMessage")


@_attrs_define
class OutgoingMessage:
    """One message to send.

    Attributes:
        body (Any): Any JSON: what a consumer receives.
        dedup_id (None | str | Unset): Sent again with this id within 5 minutes, it is not stored twice (1-128
            characters).
        delay_s (int | Unset): Seconds before it can be received (0-900).
    """

    body: Any
    dedup_id: None | str | Unset = UNSET
    delay_s: int | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        body = self.body

        dedup_id: None | str | Unset
        if isinstance(self.dedup_id, Unset):
            dedup_id = UNSET
        else:
            dedup_id = self.dedup_id

        delay_s = self.delay_s

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "body": body,
            }
        )
        if dedup_id is not UNSET:
            field_dict["dedup_id"] = dedup_id
        if delay_s is not UNSET:
            field_dict["delay_s"] = delay_s

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        body = d.pop("body")

        def _parse_dedup_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        dedup_id = _parse_dedup_id(d.pop("dedup_id", UNSET))

        delay_s = d.pop("delay_s", UNSET)

        outgoing_message = cls(
            body=body,
            dedup_id=dedup_id,
            delay_s=delay_s,
        )

        return outgoing_message

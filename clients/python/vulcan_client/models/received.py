from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="Received")


@_attrs_define
class Received:
    """One delivery of a message.

    Attributes:
        body (Any):
        id (str):
        receipt (str): Acknowledges or gives back this delivery (and no later one).
        receive_count (int): Times received, this one included.
        sent_at (datetime.datetime):
        visible_at (datetime.datetime): Hidden from other consumers until then: acknowledge it before.
        last_error (None | str | Unset): Why it was last given back, if it was.
    """

    body: Any
    id: str
    receipt: str
    receive_count: int
    sent_at: datetime.datetime
    visible_at: datetime.datetime
    last_error: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        body = self.body

        id = self.id

        receipt = self.receipt

        receive_count = self.receive_count

        sent_at = self.sent_at.isoformat()

        visible_at = self.visible_at.isoformat()

        last_error: None | str | Unset
        if isinstance(self.last_error, Unset):
            last_error = UNSET
        else:
            last_error = self.last_error

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "body": body,
                "id": id,
                "receipt": receipt,
                "receive_count": receive_count,
                "sent_at": sent_at,
                "visible_at": visible_at,
            }
        )
        if last_error is not UNSET:
            field_dict["last_error"] = last_error

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        body = d.pop("body")

        id = d.pop("id")

        receipt = d.pop("receipt")

        receive_count = d.pop("receive_count")

        sent_at = datetime.datetime.fromisoformat(d.pop("sent_at"))

        visible_at = datetime.datetime.fromisoformat(d.pop("visible_at"))

        def _parse_last_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        last_error = _parse_last_error(d.pop("last_error", UNSET))

        received = cls(
            body=body,
            id=id,
            receipt=receipt,
            receive_count=receive_count,
            sent_at=sent_at,
            visible_at=visible_at,
            last_error=last_error,
        )

        received.additional_properties = d
        return received

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

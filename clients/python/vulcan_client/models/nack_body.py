from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="NackBody")


@_attrs_define
class NackBody:
    """`POST /v1/queues/{name}/nack`.

    Attributes:
        receipt (str):
        delay_s (int | Unset): Seconds before it can be received again (0-900; 0).
        error (None | str | Unset): Why: kept as the message's last error (and shown in the dead-letter queue).
    """

    receipt: str
    delay_s: int | Unset = UNSET
    error: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        receipt = self.receipt

        delay_s = self.delay_s

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "receipt": receipt,
            }
        )
        if delay_s is not UNSET:
            field_dict["delay_s"] = delay_s
        if error is not UNSET:
            field_dict["error"] = error

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        receipt = d.pop("receipt")

        delay_s = d.pop("delay_s", UNSET)

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        nack_body = cls(
            receipt=receipt,
            delay_s=delay_s,
            error=error,
        )

        return nack_body

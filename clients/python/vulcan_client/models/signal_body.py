from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

T = TypeVar("T", bound="SignalBody")


@_attrs_define
class SignalBody:
    """
    Attributes:
        signal (int | str):
    """

    signal: int | str

    def to_dict(self) -> dict[str, Any]:
        signal: int | str
        signal = self.signal

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "signal": signal,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)

        def _parse_signal(data: object) -> int | str:
            return cast(int | str, data)

        signal = _parse_signal(d.pop("signal"))

        signal_body = cls(
            signal=signal,
        )

        return signal_body

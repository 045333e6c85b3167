from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="Retry")


@_attrs_define
class Retry:
    """Retries of a failed async workload.

    Attributes:
        max_attempts (int): Attempts in all, the first included (1–10).
        backoff_s (int | Unset): The wait before the second attempt, in seconds; it doubles for each one after
            (0–3600; default 1).
    """

    max_attempts: int
    backoff_s: int | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        max_attempts = self.max_attempts

        backoff_s = self.backoff_s

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "max_attempts": max_attempts,
            }
        )
        if backoff_s is not UNSET:
            field_dict["backoff_s"] = backoff_s

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        max_attempts = d.pop("max_attempts")

        backoff_s = d.pop("backoff_s", UNSET)

        retry = cls(
            max_attempts=max_attempts,
            backoff_s=backoff_s,
        )

        return retry

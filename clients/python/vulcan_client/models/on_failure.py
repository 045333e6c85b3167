from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="OnFailure")


@_attrs_define
class OnFailure:
    """Where a workload's last failure goes.

    Attributes:
        queue (str): A queue of the tenant's: it gets `{"workload": …}` with the failed workload.
    """

    queue: str

    def to_dict(self) -> dict[str, Any]:
        queue = self.queue

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "queue": queue,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        queue = d.pop("queue")

        on_failure = cls(
            queue=queue,
        )

        return on_failure

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.invoked import Invoked
    from ..models.published_to import PublishedTo


T = TypeVar("T", bound="Published")


@_attrs_define
class Published:
    """What one publish did: each subscribed queue's copy, each subscribed function's
    invocation (or why it was not invoked).

        Attributes:
            functions (list[Invoked]):
            queues (list[PublishedTo]):
            urls (int): POSTs stored for the url subscriptions (made by whichever node takes them).
    """

    functions: list[Invoked]
    queues: list[PublishedTo]
    urls: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        functions = []
        for functions_item_data in self.functions:
            functions_item = functions_item_data.to_dict()
            functions.append(functions_item)

        queues = []
        for queues_item_data in self.queues:
            queues_item = queues_item_data.to_dict()
            queues.append(queues_item)

        urls = self.urls

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "functions": functions,
                "queues": queues,
                "urls": urls,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.invoked import Invoked
        from ..models.published_to import PublishedTo

        d = dict(src_dict)
        functions = []
        _functions = d.pop("functions")
        for functions_item_data in _functions:
            functions_item = Invoked.from_dict(functions_item_data)

            functions.append(functions_item)

        queues = []
        _queues = d.pop("queues")
        for queues_item_data in _queues:
            queues_item = PublishedTo.from_dict(queues_item_data)

            queues.append(queues_item)

        urls = d.pop("urls")

        published = cls(
            functions=functions,
            queues=queues,
            urls=urls,
        )

        published.additional_properties = d
        return published

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

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..models.concrete_isolation import ConcreteIsolation, check_concrete_isolation
from ..types import UNSET, Unset

T = TypeVar("T", bound="BenchmarkRequest")


@_attrs_define
class BenchmarkRequest:
    """`POST /v1/benchmarks`.

    Attributes:
        backends (list[ConcreteIsolation] | None | Unset): Backends to measure [default: every available one].
        concurrency (int | Unset): Runs in flight during the throughput phase.
        image (None | str | Unset): The image of the gvisor runs [default: the default image], and of the microvm runs
            when given (instead of the built-in python root).
        iterations (int | Unset): Sequential warm runs per backend, and runs of the concurrent phase.
    """

    backends: list[ConcreteIsolation] | None | Unset = UNSET
    concurrency: int | Unset = UNSET
    image: None | str | Unset = UNSET
    iterations: int | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        backends: list[str] | None | Unset
        if isinstance(self.backends, Unset):
            backends = UNSET
        elif isinstance(self.backends, list):
            backends = []
            for backends_type_0_item_data in self.backends:
                backends_type_0_item: str = backends_type_0_item_data
                backends.append(backends_type_0_item)

        else:
            backends = self.backends

        concurrency = self.concurrency

        image: None | str | Unset
        if isinstance(self.image, Unset):
            image = UNSET
        else:
            image = self.image

        iterations = self.iterations

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if backends is not UNSET:
            field_dict["backends"] = backends
        if concurrency is not UNSET:
            field_dict["concurrency"] = concurrency
        if image is not UNSET:
            field_dict["image"] = image
        if iterations is not UNSET:
            field_dict["iterations"] = iterations

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)

        def _parse_backends(data: object) -> list[ConcreteIsolation] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                backends_type_0 = []
                _backends_type_0 = data
                for backends_type_0_item_data in _backends_type_0:
                    backends_type_0_item = check_concrete_isolation(
                        backends_type_0_item_data
                    )

                    backends_type_0.append(backends_type_0_item)

                return backends_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[ConcreteIsolation] | None | Unset, data)

        backends = _parse_backends(d.pop("backends", UNSET))

        concurrency = d.pop("concurrency", UNSET)

        def _parse_image(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        image = _parse_image(d.pop("image", UNSET))

        iterations = d.pop("iterations", UNSET)

        benchmark_request = cls(
            backends=backends,
            concurrency=concurrency,
            image=image,
            iterations=iterations,
        )

        return benchmark_request

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="ImageConfig")


@_attrs_define
class ImageConfig:
    """What an image's configuration says about running it.

    Attributes:
        cmd (list[str] | Unset):
        entrypoint (list[str] | Unset):
        env (list[str] | Unset): `NAME=value` pairs.
        user (str | Unset):
        working_dir (str | Unset):
    """

    cmd: list[str] | Unset = UNSET
    entrypoint: list[str] | Unset = UNSET
    env: list[str] | Unset = UNSET
    user: str | Unset = UNSET
    working_dir: str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        cmd: list[str] | Unset = UNSET
        if not isinstance(self.cmd, Unset):
            cmd = self.cmd

        entrypoint: list[str] | Unset = UNSET
        if not isinstance(self.entrypoint, Unset):
            entrypoint = self.entrypoint

        env: list[str] | Unset = UNSET
        if not isinstance(self.env, Unset):
            env = self.env

        user = self.user

        working_dir = self.working_dir

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({})
        if cmd is not UNSET:
            field_dict["cmd"] = cmd
        if entrypoint is not UNSET:
            field_dict["entrypoint"] = entrypoint
        if env is not UNSET:
            field_dict["env"] = env
        if user is not UNSET:
            field_dict["user"] = user
        if working_dir is not UNSET:
            field_dict["working_dir"] = working_dir

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        cmd = cast(list[str], d.pop("cmd", UNSET))

        entrypoint = cast(list[str], d.pop("entrypoint", UNSET))

        env = cast(list[str], d.pop("env", UNSET))

        user = d.pop("user", UNSET)

        working_dir = d.pop("working_dir", UNSET)

        image_config = cls(
            cmd=cmd,
            entrypoint=entrypoint,
            env=env,
            user=user,
            working_dir=working_dir,
        )

        image_config.additional_properties = d
        return image_config

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

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.pty_size import PtySize
    from ..models.start_process_env import StartProcessEnv


T = TypeVar("T", bound="StartProcess")


@_attrs_define
class StartProcess:
    """`POST /v1/sandboxes/{id}/processes`.

    Attributes:
        cmd (str): The program (a path, or a name found on the sandbox's `PATH`).
        args (list[str] | Unset):
        background (bool | Unset): Answer at once with its pid (`201`) and let it run; else wait for its end.
        cwd (None | str | Unset):
        env (StartProcessEnv | Unset):
        pty (None | PtySize | Unset):
        stdin (bool | Unset): Whether it reads a stdin written with `POST …/input`.
        tag (None | str | Unset): A name to find it by in the list (1-128 printable characters).
        timeout_s (int | None | Unset): Killed (SIGKILL) this long after it started.
        user (None | str | Unset): A user name of the sandbox, or a uid; the image's user if absent.
    """

    cmd: str
    args: list[str] | Unset = UNSET
    background: bool | Unset = UNSET
    cwd: None | str | Unset = UNSET
    env: StartProcessEnv | Unset = UNSET
    pty: None | PtySize | Unset = UNSET
    stdin: bool | Unset = UNSET
    tag: None | str | Unset = UNSET
    timeout_s: int | None | Unset = UNSET
    user: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.pty_size import PtySize

        cmd = self.cmd

        args: list[str] | Unset = UNSET
        if not isinstance(self.args, Unset):
            args = self.args

        background = self.background

        cwd: None | str | Unset
        if isinstance(self.cwd, Unset):
            cwd = UNSET
        else:
            cwd = self.cwd

        env: dict[str, Any] | Unset = UNSET
        if not isinstance(self.env, Unset):
            env = self.env.to_dict()

        pty: dict[str, Any] | None | Unset
        if isinstance(self.pty, Unset):
            pty = UNSET
        elif isinstance(self.pty, PtySize):
            pty = self.pty.to_dict()
        else:
            pty = self.pty

        stdin = self.stdin

        tag: None | str | Unset
        if isinstance(self.tag, Unset):
            tag = UNSET
        else:
            tag = self.tag

        timeout_s: int | None | Unset
        if isinstance(self.timeout_s, Unset):
            timeout_s = UNSET
        else:
            timeout_s = self.timeout_s

        user: None | str | Unset
        if isinstance(self.user, Unset):
            user = UNSET
        else:
            user = self.user

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "cmd": cmd,
            }
        )
        if args is not UNSET:
            field_dict["args"] = args
        if background is not UNSET:
            field_dict["background"] = background
        if cwd is not UNSET:
            field_dict["cwd"] = cwd
        if env is not UNSET:
            field_dict["env"] = env
        if pty is not UNSET:
            field_dict["pty"] = pty
        if stdin is not UNSET:
            field_dict["stdin"] = stdin
        if tag is not UNSET:
            field_dict["tag"] = tag
        if timeout_s is not UNSET:
            field_dict["timeout_s"] = timeout_s
        if user is not UNSET:
            field_dict["user"] = user

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.pty_size import PtySize
        from ..models.start_process_env import StartProcessEnv

        d = dict(src_dict)
        cmd = d.pop("cmd")

        args = cast(list[str], d.pop("args", UNSET))

        background = d.pop("background", UNSET)

        def _parse_cwd(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        cwd = _parse_cwd(d.pop("cwd", UNSET))

        _env = d.pop("env", UNSET)
        env: StartProcessEnv | Unset
        if isinstance(_env, Unset):
            env = UNSET
        else:
            env = StartProcessEnv.from_dict(_env)

        def _parse_pty(data: object) -> None | PtySize | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                pty_type_0 = PtySize.from_dict(data)

                return pty_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | PtySize | Unset, data)

        pty = _parse_pty(d.pop("pty", UNSET))

        stdin = d.pop("stdin", UNSET)

        def _parse_tag(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        tag = _parse_tag(d.pop("tag", UNSET))

        def _parse_timeout_s(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        timeout_s = _parse_timeout_s(d.pop("timeout_s", UNSET))

        def _parse_user(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        user = _parse_user(d.pop("user", UNSET))

        start_process = cls(
            cmd=cmd,
            args=args,
            background=background,
            cwd=cwd,
            env=env,
            pty=pty,
            stdin=stdin,
            tag=tag,
            timeout_s=timeout_s,
            user=user,
        )

        return start_process

from typing import Literal

StreamChoice = Literal["all", "backend", "stderr", "stdout"]

STREAM_CHOICE_VALUES: set[StreamChoice] = {
    "all",
    "backend",
    "stderr",
    "stdout",
}


def check_stream_choice(value: str) -> StreamChoice:
    if value in STREAM_CHOICE_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {STREAM_CHOICE_VALUES!r}"
    )

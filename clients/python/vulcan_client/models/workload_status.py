from typing import Literal

WorkloadStatus = Literal["completed", "failed", "killed", "pending", "running"]

WORKLOAD_STATUS_VALUES: set[WorkloadStatus] = {
    "completed",
    "failed",
    "killed",
    "pending",
    "running",
}


def check_workload_status(value: str) -> WorkloadStatus:
    if value in WORKLOAD_STATUS_VALUES:
        return value
    raise TypeError(
        f"Unexpected value {value!r}. Expected one of {WORKLOAD_STATUS_VALUES!r}"
    )

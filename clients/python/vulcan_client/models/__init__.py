"""Contains all the data models used in inputs/outputs"""

from .ack_body import AckBody
from .acked import Acked
from .active_body import ActiveBody
from .api_key import ApiKey
from .async_options import AsyncOptions
from .async_policy import AsyncPolicy
from .audit_entry import AuditEntry
from .audit_outcome import AuditOutcome
from .backend_capabilities import BackendCapabilities
from .backend_figures import BackendFigures
from .backend_figures_start_ms import BackendFiguresStartMs
from .backend_info import BackendInfo
from .backend_stats import BackendStats
from .benchmark_report import BenchmarkReport
from .benchmark_request import BenchmarkRequest
from .bytes_input import BytesInput
from .close_input import CloseInput
from .code import Code
from .code_body import CodeBody
from .code_body_env import CodeBodyEnv
from .code_env import CodeEnv
from .concrete_isolation import ConcreteIsolation
from .create_key import CreateKey
from .create_sandbox import CreateSandbox
from .create_sandbox_env import CreateSandboxEnv
from .create_sandbox_metadata import CreateSandboxMetadata
from .create_topic import CreateTopic
from .create_volume import CreateVolume
from .create_workload import CreateWorkload
from .created_key import CreatedKey
from .deploy_body import DeployBody
from .deployed import Deployed
from .egress import Egress
from .error_body import ErrorBody
from .event import Event
from .file_entry import FileEntry
from .function import Function
from .function_code import FunctionCode
from .function_version import FunctionVersion
from .get_openapi_json_response_200 import GetOpenapiJsonResponse200
from .get_ws_events_connection import GetWsEventsConnection
from .get_ws_events_sec_web_socket_version import GetWsEventsSecWebSocketVersion
from .get_ws_events_upgrade import GetWsEventsUpgrade
from .get_ws_logs_id_connection import GetWsLogsIdConnection
from .get_ws_logs_id_sec_web_socket_version import GetWsLogsIdSecWebSocketVersion
from .get_ws_logs_id_upgrade import GetWsLogsIdUpgrade
from .get_ws_sandboxes_id_files_watch_connection import (
    GetWsSandboxesIdFilesWatchConnection,
)
from .get_ws_sandboxes_id_files_watch_sec_web_socket_version import (
    GetWsSandboxesIdFilesWatchSecWebSocketVersion,
)
from .get_ws_sandboxes_id_files_watch_upgrade import GetWsSandboxesIdFilesWatchUpgrade
from .get_ws_sandboxes_id_processes_pid_connection import (
    GetWsSandboxesIdProcessesPidConnection,
)
from .get_ws_sandboxes_id_processes_pid_sec_web_socket_version import (
    GetWsSandboxesIdProcessesPidSecWebSocketVersion,
)
from .get_ws_sandboxes_id_processes_pid_upgrade import (
    GetWsSandboxesIdProcessesPidUpgrade,
)
from .get_ws_stats_connection import GetWsStatsConnection
from .get_ws_stats_sec_web_socket_version import GetWsStatsSecWebSocketVersion
from .get_ws_stats_upgrade import GetWsStatsUpgrade
from .given_back import GivenBack
from .health import Health
from .image_config import ImageConfig
from .image_record import ImageRecord
from .invoked import Invoked
from .isolation import Isolation
from .log_history import LogHistory
from .log_line import LogLine
from .log_stream import LogStream
from .me import Me
from .message_batch import MessageBatch
from .minute_count import MinuteCount
from .mkdir_body import MkdirBody
from .move_body import MoveBody
from .nack_body import NackBody
from .network_policy import NetworkPolicy
from .new_queue import NewQueue
from .node import Node
from .node_backend import NodeBackend
from .node_record import NodeRecord
from .node_record_instances import NodeRecordInstances
from .node_state import NodeState
from .node_template import NodeTemplate
from .on_failure import OnFailure
from .on_timeout import OnTimeout
from .outgoing_message import OutgoingMessage
from .overlap import Overlap
from .pause_mode import PauseMode
from .process_info import ProcessInfo
from .process_result import ProcessResult
from .progress import Progress
from .pty_size import PtySize
from .publish import Publish
from .published import Published
from .published_to import PublishedTo
from .pull_request import PullRequest
from .purged import Purged
from .queue import Queue
from .queue_config import QueueConfig
from .queue_counts import QueueCounts
from .queue_settings import QueueSettings
from .queue_trigger import QueueTrigger
from .queue_view import QueueView
from .quota import Quota
from .receive_body import ReceiveBody
from .received import Received
from .received_messages import ReceivedMessages
from .resources import Resources
from .resources_body import ResourcesBody
from .retry import Retry
from .role import Role
from .rotated import Rotated
from .run_workload import RunWorkload
from .runtime import Runtime
from .sandbox import Sandbox
from .sandbox_isolation import SandboxIsolation
from .sandbox_metadata import SandboxMetadata
from .sandbox_metrics import SandboxMetrics
from .sandbox_page import SandboxPage
from .sandbox_resources import SandboxResources
from .sandbox_resources_body import SandboxResourcesBody
from .sandbox_state import SandboxState
from .schedule import Schedule
from .schedule_patch import SchedulePatch
from .schedule_request import ScheduleRequest
from .secret_body import SecretBody
from .secret_info import SecretInfo
from .sent import Sent
from .sent_messages import SentMessages
from .signal_body import SignalBody
from .spec_view import SpecView
from .sse_log_event import SseLogEvent
from .sse_process_event import SseProcessEvent
from .start_process import StartProcess
from .start_process_env import StartProcessEnv
from .stats import Stats
from .stats_backends import StatsBackends
from .stats_by_isolation import StatsByIsolation
from .stats_by_status import StatsByStatus
from .stream_choice import StreamChoice
from .subscribe_function import SubscribeFunction
from .subscribe_queue import SubscribeQueue
from .subscribe_url import SubscribeUrl
from .subscription import Subscription
from .template_on_node import TemplateOnNode
from .tenant_quota import TenantQuota
from .text_input import TextInput
from .time_zone import TimeZone
from .timeline import Timeline
from .timeout_body import TimeoutBody
from .topic import Topic
from .trigger import Trigger
from .usage_sample import UsageSample
from .version_view import VersionView
from .volume import Volume
from .volume_mount import VolumeMount
from .workload import Workload
from .workload_list import WorkloadList
from .workload_status import WorkloadStatus

__all__ = (
    "AckBody",
    "Acked",
    "ActiveBody",
    "ApiKey",
    "AsyncOptions",
    "AsyncPolicy",
    "AuditEntry",
    "AuditOutcome",
    "BackendCapabilities",
    "BackendFigures",
    "BackendFiguresStartMs",
    "BackendInfo",
    "BackendStats",
    "BenchmarkReport",
    "BenchmarkRequest",
    "BytesInput",
    "CloseInput",
    "Code",
    "CodeBody",
    "CodeBodyEnv",
    "CodeEnv",
    "ConcreteIsolation",
    "CreateKey",
    "CreateSandbox",
    "CreateSandboxEnv",
    "CreateSandboxMetadata",
    "CreateTopic",
    "CreateVolume",
    "CreateWorkload",
    "CreatedKey",
    "DeployBody",
    "Deployed",
    "Egress",
    "ErrorBody",
    "Event",
    "FileEntry",
    "Function",
    "FunctionCode",
    "FunctionVersion",
    "GetOpenapiJsonResponse200",
    "GetWsEventsConnection",
    "GetWsEventsSecWebSocketVersion",
    "GetWsEventsUpgrade",
    "GetWsLogsIdConnection",
    "GetWsLogsIdSecWebSocketVersion",
    "GetWsLogsIdUpgrade",
    "GetWsSandboxesIdFilesWatchConnection",
    "GetWsSandboxesIdFilesWatchSecWebSocketVersion",
    "GetWsSandboxesIdFilesWatchUpgrade",
    "GetWsSandboxesIdProcessesPidConnection",
    "GetWsSandboxesIdProcessesPidSecWebSocketVersion",
    "GetWsSandboxesIdProcessesPidUpgrade",
    "GetWsStatsConnection",
    "GetWsStatsSecWebSocketVersion",
    "GetWsStatsUpgrade",
    "GivenBack",
    "Health",
    "ImageConfig",
    "ImageRecord",
    "Invoked",
    "Isolation",
    "LogHistory",
    "LogLine",
    "LogStream",
    "Me",
    "MessageBatch",
    "MinuteCount",
    "MkdirBody",
    "MoveBody",
    "NackBody",
    "NetworkPolicy",
    "NewQueue",
    "Node",
    "NodeBackend",
    "NodeRecord",
    "NodeRecordInstances",
    "NodeState",
    "NodeTemplate",
    "OnFailure",
    "OnTimeout",
    "OutgoingMessage",
    "Overlap",
    "PauseMode",
    "ProcessInfo",
    "ProcessResult",
    "Progress",
    "PtySize",
    "Publish",
    "Published",
    "PublishedTo",
    "PullRequest",
    "Purged",
    "Queue",
    "QueueConfig",
    "QueueCounts",
    "QueueSettings",
    "QueueTrigger",
    "QueueView",
    "Quota",
    "ReceiveBody",
    "Received",
    "ReceivedMessages",
    "Resources",
    "ResourcesBody",
    "Retry",
    "Role",
    "Rotated",
    "RunWorkload",
    "Runtime",
    "Sandbox",
    "SandboxIsolation",
    "SandboxMetadata",
    "SandboxMetrics",
    "SandboxPage",
    "SandboxResources",
    "SandboxResourcesBody",
    "SandboxState",
    "Schedule",
    "SchedulePatch",
    "ScheduleRequest",
    "SecretBody",
    "SecretInfo",
    "Sent",
    "SentMessages",
    "SignalBody",
    "SpecView",
    "SseLogEvent",
    "SseProcessEvent",
    "StartProcess",
    "StartProcessEnv",
    "Stats",
    "StatsBackends",
    "StatsByIsolation",
    "StatsByStatus",
    "StreamChoice",
    "SubscribeFunction",
    "SubscribeQueue",
    "SubscribeUrl",
    "Subscription",
    "TemplateOnNode",
    "TenantQuota",
    "TextInput",
    "TimeZone",
    "Timeline",
    "TimeoutBody",
    "Topic",
    "Trigger",
    "UsageSample",
    "VersionView",
    "Volume",
    "VolumeMount",
    "Workload",
    "WorkloadList",
    "WorkloadStatus",
)

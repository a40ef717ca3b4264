"""OctoPrint driver: REST client and push stream with typed results, and the PrinterDriver over them."""

from devices.octoprint.client import OctoPrintClient
from devices.octoprint.driver import OctoPrintDriver, host_snapshot, host_state
from devices.octoprint.models import (
    ConnectionInfo,
    EventKind,
    PrinterEvent,
    PrinterFlags,
    RemoteFile,
    Snapshot,
    Temperature,
    UploadResult,
    VersionInfo,
)
from devices.octoprint.push import PushItem, PushStream

__all__ = [
    "ConnectionInfo",
    "EventKind",
    "OctoPrintClient",
    "OctoPrintDriver",
    "PrinterEvent",
    "PrinterFlags",
    "PushItem",
    "PushStream",
    "RemoteFile",
    "Snapshot",
    "Temperature",
    "UploadResult",
    "VersionInfo",
    "host_snapshot",
    "host_state",
]

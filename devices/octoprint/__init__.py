"""OctoPrint driver: REST client and push stream with typed results."""

from devices.octoprint.client import OctoPrintClient
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
    "PrinterEvent",
    "PrinterFlags",
    "PushItem",
    "PushStream",
    "RemoteFile",
    "Snapshot",
    "Temperature",
    "UploadResult",
    "VersionInfo",
]

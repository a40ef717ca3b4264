"""Notifications: tell people when to act, through Apprise URLs and/or an MQTT topic ([notify])."""

from controller.notify.notices import Notice
from controller.notify.service import Notifications

__all__ = ["Notice", "Notifications"]

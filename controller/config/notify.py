"""`[notify]`: who is told when to act (a bed to clear, a failed print, a printer down, a quota reached)."""

from __future__ import annotations

import logging
import warnings
from enum import StrEnum
from types import ModuleType
from typing import Self

from pydantic import Field, model_validator

from controller.config.base import Section
from controller.config.errors import key_error

# A topic to publish on: no wildcards, no empty levels at the ends, no leading `$` (broker topics).
TOPIC = r"^[^#+$/\s]([^#+\s]*[^#+/\s])?$"


class NoticeKind(StrEnum):
    """What a notification is about; [notify] events picks which ones are sent."""

    PRINT_FINISHED = "print_finished"  # the bed needs clearing
    PRINT_FAILED = "print_failed"
    PRINTER_ERROR = "printer_error"
    PRINTER_OFFLINE = "printer_offline"
    QUOTA_REACHED = "quota_reached"  # a submission was refused for a member's monthly quota


class NotifyConfig(Section):
    """`[notify]`: Apprise URLs and/or an MQTT topic on the [mqtt] broker, which events, how often."""

    urls: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Apprise URLs (ntfy://, tgram://, discord://, mailtos://, json://, ...); they may hold "
        "tokens, so the config file must not be world-readable; logs show them masked",
    )
    mqtt_topic: str | None = Field(
        None, pattern=TOPIC, description="Publish each notification as JSON on this topic of [mqtt]"
    )
    events: list[NoticeKind] = Field(default_factory=lambda: list(NoticeKind), description="Which to send")
    burst: int = Field(5, ge=1, le=1000, description="At most this many of one event kind to one target ...")
    window_s: float = Field(
        300.0, gt=0, le=86400, description="... within this many seconds; more are dropped"
    )
    timeout_s: float = Field(10.0, gt=0, le=300, description="One attempt to reach a target, seconds")
    retry_for_s: float = Field(
        3600.0, ge=0, le=7 * 86400, description="Retry a target that is down for this long, then give up"
    )

    @model_validator(mode="after")
    def _targets(self) -> Self:
        if not self.urls and self.mqtt_topic is None:
            raise key_error("urls", "[notify] needs urls, mqtt_topic or both")
        if self.urls:
            _check_urls(self.urls)
        return self


def load_apprise() -> ModuleType:
    """The apprise module with its plugins loaded (once). Loading them imports PGPy, which imports the
    standard library's deprecated imghdr: a DeprecationWarning that is neither ours nor apprise's to
    fix here, silenced for that import only. Imported on first use: it takes half a second, which
    `farmctl` commands without [notify] urls need not pay."""
    import apprise

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "'imghdr' is deprecated", DeprecationWarning)
        apprise.Apprise.instantiate("json://127.0.0.1/")  # the first call loads every plugin
    return apprise


def _check_urls(urls: list[str]) -> None:
    """Each URL must be one Apprise can send to. The message names the scheme, never the URL: it may
    hold a token."""
    apprise = load_apprise()
    quiet = logging.getLogger("apprise")
    was = quiet.disabled
    quiet.disabled = True  # apprise logs a refused URL in full
    try:
        for i, url in enumerate(urls):
            if apprise.Apprise.instantiate(url) is None:
                scheme = url.split("://", 1)[0] if "://" in url else ""
                shown = f"scheme {scheme[:20]!r}" if scheme.isascii() and scheme.isalnum() else "no scheme"
                raise key_error(("urls", i), f"not a notification URL Apprise can send to ({shown})")
    finally:
        quiet.disabled = was

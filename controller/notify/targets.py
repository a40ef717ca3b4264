"""Where notifications go: an Apprise URL (ntfy, Telegram, Discord, e-mail, JSON over HTTP, ...) or a
topic on the [mqtt] broker. Each `send` either delivers or raises TargetDown with a reason that holds
no secret."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

import aiomqtt

from controller.config import MqttConfig
from controller.config.notify import load_apprise
from controller.notify.notices import Notice

# Apprise logs each attempt, its failures in its own words: a line per retry, where the house logs
# an outage once. Its lines stay out of the daemon's log; a failure's reason comes from the call's own
# result (its log entries) and is logged once per outage, masked (Outbox, AppriseTarget._redact).
_apprise_log = logging.getLogger("apprise")
_apprise_log.setLevel(logging.WARNING)
_apprise_log.propagate = False
_apprise_log.addHandler(logging.NullHandler())


class TargetDown(Exception):
    """A target did not take a notification; the message is safe to log."""


class Target(Protocol):
    name: str

    async def send(self, notice: Notice) -> None: ...

    def close(self) -> None: ...


def masker(url: str, shown: str) -> re.Pattern[str] | None:
    """A pattern of the parts of `url` that its masked form `shown` leaves out (tokens, passwords)."""
    parts = {p for p in re.split(r"[/:@?&=#,;]+", url) if len(p) >= 3 and p not in shown}
    if not parts:
        return None
    return re.compile("|".join(re.escape(p) for p in sorted(parts, key=len, reverse=True)))


T = TypeVar("T")


def in_thread(work: Callable[[], T]) -> asyncio.Future[T]:
    """`work()` in a daemon thread of its own. Not the loop's executor: a hung call there would hold
    the interpreter's exit (its threads are joined), and it would share its threads with the store."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():  # given up on (timeout, stop)
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = work(), None
        except Exception as exc:  # handed to the awaiting task
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="notify", daemon=True).start()
    return future


class AppriseTarget:
    """One Apprise URL. Apprise is blocking: each send runs in a thread of its own, one at a time per
    target, so a slow service holds up nothing but its own later notifications."""

    def __init__(self, url: str, timeout_s: float) -> None:
        apprise = load_apprise()
        service = apprise.Apprise.instantiate(url)
        if service is None:  # checked when the config loads
            raise ValueError("not an Apprise URL")
        # Apprise's own form with its secrets masked, without the query of its defaults.
        self.name = str(service.url(privacy=True)).split("?", 1)[0]
        self._mask = masker(url, self.name)
        self._apprise = apprise.Apprise()
        self._apprise.add(service)
        self._timeout_s = timeout_s
        self._busy: asyncio.Future[str | None] | None = None

    def _redact(self, text: str) -> str:
        return self._mask.sub("****", text) if self._mask else text

    def _notify(self, notice: Notice) -> str | None:
        """None once delivered, else what went wrong in apprise's words."""
        result = self._apprise.notify(title=notice.title, body=notice.body)
        if result:
            return None
        # Apprise 2.3's result carries the call's log entries; an older one says only True or False.
        entries = list(result.logs()) if callable(getattr(result, "logs", None)) else []
        return str(entries[-1].message) if entries else "the service did not take it"

    async def send(self, notice: Notice) -> None:
        if self._busy is not None and not self._busy.done():
            raise TargetDown("the last attempt has not returned yet")
        self._busy = in_thread(lambda: self._notify(notice))
        try:
            async with asyncio.timeout(self._timeout_s):
                failed = await asyncio.shield(self._busy)
        except TimeoutError:
            raise TargetDown(f"no answer within {self._timeout_s:g} s") from None
        if failed is not None:
            raise TargetDown(self._redact(failed))

    def close(self) -> None:
        pass


class MqttTarget:
    """A topic on the [mqtt] broker: each notification one JSON message, QoS 1, not retained. A
    connection per message: notifications are few, and an idle connection would need its own keeping."""

    def __init__(self, mqtt: MqttConfig, topic: str, timeout_s: float) -> None:
        self.name = f"mqtt:{topic}"
        self._mqtt = mqtt
        self._topic = topic
        self._timeout_s = timeout_s

    async def send(self, notice: Notice) -> None:
        m = self._mqtt
        tls = None
        if m.tls:
            ca = str(m.ca_path) if m.ca_path else None
            tls = aiomqtt.TLSParameters(
                ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT
            )
        client = aiomqtt.Client(
            m.host,
            m.port,
            # Not the ingest's id: the broker would drop the ingest's session for this one.
            identifier=f"{m.client_id}-notify",
            username=m.username,
            password=m.password,
            tls_params=tls,
            keepalive=m.keepalive,
        )
        try:
            async with asyncio.timeout(self._timeout_s), client:
                await client.publish(self._topic, notice.to_json(), qos=1)
        except TimeoutError:
            raise TargetDown(f"no answer from {m.host}:{m.port} within {self._timeout_s:g} s") from None
        except aiomqtt.MqttError as exc:
            raise TargetDown(f"{m.host}:{m.port}: {exc}") from None

    def close(self) -> None:
        pass

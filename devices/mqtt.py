"""What aiomqtt does not offer yet, done on the paho client inside it: manual acks and per-topic callbacks.

aiomqtt (2.x) acknowledges a QoS 1 message as soon as paho hands it over, so a message in its queue is
lost if we stop before handling it, and a backlog that outruns a bounded queue is dropped after it was
acknowledged. paho (≥ 2.0) can leave the ack to the application (`manual_ack_set`, `ack`); aiomqtt
does not expose it: upstream issue empicano/aiomqtt#345 "Application-controlled acknowledgements"
(open; the draft pull request #346 adds it). Until it lands, this module is the only place that
reaches into aiomqtt's private `Client._client`; tests/test_mqtt_workaround.py fails when an aiomqtt
release moves it, and once aiomqtt has its own manual acks these functions should call that instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

TopicCallback = Callable[[paho.Client, Any, paho.MQTTMessage], None]


def paho_client(client: aiomqtt.Client) -> paho.Client:
    """The paho client that an aiomqtt client drives (a private attribute: see the module note)."""
    inner = client._client
    if not isinstance(inner, paho.Client):  # an aiomqtt release changed its insides
        raise TypeError(f"aiomqtt.Client._client is {type(inner).__name__}, not a paho client")
    return inner


def enable_manual_acks(client: aiomqtt.Client) -> None:
    """Before connecting: QoS 1/2 messages stay unacknowledged until `ack()` (or an `Acks` flush)."""
    paho_client(client).manual_ack_set(True)


def ack(client: aiomqtt.Client, mid: int, qos: int) -> None:
    """Acknowledge one handled message (a no-op for QoS 0)."""
    if qos:
        paho_client(client).ack(mid, qos)


def on_topic(client: aiomqtt.Client, topic: str, callback: TopicCallback) -> None:
    """Hand messages on `topic` to `callback` on paho's thread of control, never to aiomqtt's queue."""
    paho_client(client).message_callback_add(topic, callback)


class Acks:
    """Acks of handled QoS 1/2 messages, sent in groups: one socket write for several instead of one each.

    A group goes out when it has `batch` acks or `delay_s` after its first, whichever is first.
    """

    def __init__(self, client: aiomqtt.Client, *, batch: int, delay_s: float) -> None:
        self._paho = paho_client(client)
        self._batch = batch
        self._delay_s = delay_s
        self._pending: list[tuple[int, int]] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, mid: int, qos: int) -> None:
        if qos == 0:
            return
        self._pending.append((mid, qos))
        if len(self._pending) >= self._batch:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._delay_s, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for mid, qos in self._pending:
            self._paho.ack(mid, qos)
        self._pending.clear()

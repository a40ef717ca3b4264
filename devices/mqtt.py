"""What aiomqtt does not offer yet, done on the paho client inside it: manual acks, per-topic callbacks,
and reading and acknowledging a backlog in groups.

aiomqtt (2.x) acknowledges a QoS 1 message as soon as paho hands it over, so a message in its queue is
lost if we stop before handling it, and a backlog that outruns a bounded queue is dropped after it was
acknowledged. paho (≥ 2.0) can leave the ack to the application (`manual_ack_set`, `ack`); aiomqtt
does not expose it: upstream issue empicano/aiomqtt#345 "Application-controlled acknowledgements"
(open; the draft pull request #346 adds it). Until it lands, this module is the only place that
reaches into aiomqtt's private `Client._client`; tests/test_mqtt_workaround.py fails when an aiomqtt
release moves it, and once aiomqtt has its own manual acks these functions should call that instead.

Two more reach into paho itself, for the pace of a backlog (bench/ingest.py, CPU per message measured
in the ingest process, 30,000 QoS 1 messages): paho reads one packet per readable event, so each
message cost a whole turn of the event loop (an epoll call, the reader callback, the consumer's wake),
and each ack was a packet and a send() of its own. `read_in_batches` reads up to a limit of packets
per readable event (the broker's in-flight window, 20 on mosquitto, bounds what is waiting); `Acks`
queues a group of PUBACKs as one packet. Together the ingest went from about 130-150 to 75-95 µs of
CPU per message. Both use paho's private `_packet_read`, `_loop_rc_handle`, `_sock` and `_packet_queue`
(paho 2.x); the same test file fails when a release changes them.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

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


def read_in_batches(client: aiomqtt.Client, limit: int = 64) -> None:
    """Before connecting: each readable event reads up to `limit` packets, not one (see the module note).

    The same steps as paho's own `loop_read`, with a larger count: it stops at the first packet not
    complete yet (the rest comes with the next readable event) and hands an error on as paho does.
    """
    inner = paho_client(client)

    def loop_read(max_packets: int = 1) -> MQTTErrorCode:
        for _ in range(max(limit, max_packets)):
            if inner._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = inner._packet_read()
            if rc > 0:
                return inner._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                break
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    # aiomqtt's reader callback calls the instance's loop_read: this one replaces paho's for it.
    inner.loop_read = loop_read  # type: ignore[method-assign]


_PUBACK = struct.Struct("!BBH")  # PUBACK, remaining length 2, message id (MQTT 3.1.1 and 5 alike)


class Acks:
    """Acks of handled QoS 1/2 messages, sent in groups: the PUBACKs of a group go as one packet (one
    send) instead of one each (see the module note).

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
        pubacks = bytearray()
        for mid, qos in self._pending:
            if qos == 1:
                pubacks += _PUBACK.pack(paho.PUBACK, 2, mid)
            else:  # QoS 2's last step (PUBCOMP): rare, paho's own way
                self._paho.ack(mid, qos)
        self._pending.clear()
        if pubacks:
            # paho writes a queued packet's bytes as they are; mid 0 and qos 1 keep its PUBLISH-only
            # bookkeeping out of it.
            self._paho._packet_queue(paho.PUBACK, pubacks, 0, 1)

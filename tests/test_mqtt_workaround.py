"""devices/mqtt.py reaches into aiomqtt's private paho client for manual acks (aiomqtt#345), and into
paho's private reading and queueing for a backlog's pace: these tests fail when a release moves what it
uses, and prove against mosquitto that the acks and the grouped reads work as the ingest needs."""

from __future__ import annotations

import asyncio
import inspect
import itertools

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from devices.mqtt import Acks, ack, enable_manual_acks, on_topic, paho_client, read_in_batches
from tests.peers.servers import MosquittoPeer

_ids = itertools.count()


async def test_aiomqtt_still_drives_a_paho_client_with_manual_acks() -> None:
    client = aiomqtt.Client("127.0.0.1", 1883)
    inner = client._client  # the private attribute devices/mqtt.py relies on
    assert isinstance(inner, paho.Client)
    for method in ("manual_ack_set", "ack", "message_callback_add"):
        assert callable(getattr(inner, method, None)), f"paho.Client.{method} is gone"
    assert paho_client(client) is inner


def test_paho_still_has_what_the_grouped_reads_and_acks_use() -> None:
    inner = paho.Client(CallbackAPIVersion.VERSION2)
    for method in ("_packet_read", "_loop_rc_handle", "_packet_queue"):
        assert callable(getattr(inner, method, None)), f"paho.Client.{method} is gone"
    assert hasattr(inner, "_sock"), "paho.Client._sock is gone"
    params = list(inspect.signature(inner._packet_queue).parameters)
    assert params[:4] == ["command", "packet", "mid", "qos"], params


async def test_a_changed_aiomqtt_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    client = aiomqtt.Client("127.0.0.1", 1883)
    monkeypatch.setattr(client, "_client", object())
    with pytest.raises(TypeError, match="not a paho client"):
        enable_manual_acks(client)


def _session(port: int, identifier: str) -> aiomqtt.Client:
    """A persistent session: the broker keeps what we have not acknowledged for the next connect."""
    client = aiomqtt.Client("127.0.0.1", port, identifier=identifier, clean_session=False)
    enable_manual_acks(client)
    return client


async def _next(client: aiomqtt.Client) -> aiomqtt.Message:
    async with asyncio.timeout(5):
        return await anext(client.messages)


async def test_only_acknowledged_messages_are_done_with(mosquitto: MosquittoPeer) -> None:
    topic, me = f"farm/ack/{next(_ids)}", f"ack-test-{next(_ids)}"
    async with _session(mosquitto.port, me) as sub:
        await sub.subscribe(topic, qos=1)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
        await pub.publish(topic, b"one", qos=1)

        async with _session(mosquitto.port, me) as sub:
            assert (await _next(sub)).payload == b"one"  # taken, never acknowledged
        async with _session(mosquitto.port, me) as sub:
            again = await _next(sub)
            assert again.payload == b"one"  # so the broker sends it again
            acks = Acks(sub, batch=10, delay_s=0.001)
            acks.add(again.mid, again.qos)
            await asyncio.sleep(0.1)  # the group goes out after delay_s
        await pub.publish(topic, b"two", qos=1)
        async with _session(mosquitto.port, me) as sub:
            second = await _next(sub)
            assert second.payload == b"two"  # "one" is done with
            ack(sub, second.mid, second.qos)
            await pub.publish(topic, b"three", qos=1)
            assert (await _next(sub)).payload == b"three"


async def test_a_topic_callback_takes_its_messages_off_the_queue(mosquitto: MosquittoPeer) -> None:
    base = f"farm/side/{next(_ids)}"
    heard: list[bytes | bytearray] = []
    client = aiomqtt.Client("127.0.0.1", mosquitto.port)
    on_topic(client, f"{base}/counter", lambda _c, _u, message: heard.append(message.payload))
    async with client, aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
        await client.subscribe(f"{base}/#", qos=1)
        await pub.publish(f"{base}/counter", b"7", qos=1)
        await pub.publish(f"{base}/reading", b"21.5", qos=1)
        message = await _next(client)
        assert (str(message.topic), message.payload) == (f"{base}/reading", b"21.5")
        assert heard == [b"7"]


async def test_a_backlog_is_read_in_groups_and_acknowledged_in_groups(mosquitto: MosquittoPeer) -> None:
    """200 QoS 1 messages waiting for a session: all arrive in order with far fewer reader calls than
    messages, and the grouped PUBACKs settle every one (the next session gets nothing again)."""
    topic, me, count = f"farm/backlog/{next(_ids)}", f"batch-test-{next(_ids)}", 200
    async with _session(mosquitto.port, me) as sub:
        await sub.subscribe(topic, qos=1)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
        for n in range(count):
            await pub.publish(topic, str(n).encode(), qos=1)
    client = _session(mosquitto.port, me)
    read_in_batches(client)
    inner = paho_client(client)
    grouped = inner.loop_read
    calls = 0

    def counted(max_packets: int = 1) -> MQTTErrorCode:
        nonlocal calls
        calls += 1
        return grouped(max_packets)

    inner.loop_read = counted  # type: ignore[method-assign]
    async with client as sub:
        acks = Acks(sub, batch=10, delay_s=0.001)
        got = []
        for _ in range(count):
            message = await _next(sub)
            got.append(int(bytes(message.payload)))
            acks.add(message.mid, message.qos)
        acks.flush()
        await asyncio.sleep(0.2)  # the last group's write
    assert got == list(range(count))
    assert calls < count / 2, f"{calls} reader calls for {count} messages"
    async with _session(mosquitto.port, me) as sub, aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
        await pub.publish(topic, b"after", qos=1)
        assert (await _next(sub)).payload == b"after"  # nothing of the 200 came again

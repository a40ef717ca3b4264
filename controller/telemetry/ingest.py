"""MQTT sensor ingest: a persistent QoS 1 session, each message decoded by its sensor's profile into
points for the telemetry writer. A bad message is counted and logged (at most once a minute per
sensor); nothing a device sends can stop the loop.

A QoS 1 message is acknowledged only after its points are in the writer's queue, so the broker holds
what we have not taken yet and never sends more than its in-flight window ahead of us: a backlog after
an outage is back-pressure, not memory. (With paho's automatic acks, aiomqtt's bounded queue dropped
already-acknowledged messages when a backlog arrived faster than it drained.) QoS 0 messages have no
such brake: beyond QOS0_QUEUE_MAX waiting they are dropped and counted.

The broker's own queue for us is finite too (mosquitto: 1000 messages per client by default) and it
drops what does not fit without telling anyone. We cannot see which messages it dropped, but mosquitto
counts them: its counter is read from $SYS and shown in /metrics, with a warning when it rises.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiomqtt
import paho.mqtt.client as mqtt

from controller.config import MqttConfig, SensorConfig
from controller.core.availability import Availability, Backoff
from controller.core.events import EventFeed, SensorReadings
from controller.tasks import run_until_stopped
from devices.mqtt import Acks, enable_manual_acks, on_topic, read_in_batches
from devices.sensors import FieldMap, PayloadError, Profile, SensorSpec, TopicIndex, decode

log = logging.getLogger(__name__)

REJECT_LOG_INTERVAL_S = 60.0
QOS0_QUEUE_MAX = 10_000
# Acks are sent in groups: one socket write for several instead of one per message. A group goes out
# when it is full or ACK_DELAY_S after its first ack, whichever is first, so a broker's in-flight window
# (mosquitto: 20) never waits long on us, even a window smaller than a group.
ACK_BATCH = 10
ACK_DELAY_S = 0.001
# mosquitto's count of QoS 1/2 messages it dropped since it started because a client's queue was full
# (max_queued_messages, max_queued_bytes), all clients together; republished on change every
# sys_interval (10 s) and retained, so each (re)subscribe brings the current value. Brokers without
# it, or an ACL that hides it, leave the metric absent.
BROKER_DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"
# A client whose queue stays full makes the count rise every sys_interval: one line per 10 minutes.
BROKER_DROP_LOG_INTERVAL_S = 600.0


@dataclass
class IngestStats:
    """Counters for /metrics."""

    received: int = 0
    decoded: int = 0
    rejected: int = 0
    unmatched: int = 0
    readings: int = 0  # decoded points published on the feed
    dropped: int = 0  # QoS 0 messages beyond QOS0_QUEUE_MAX waiting
    broker_dropped: int | None = None  # the broker's count (BROKER_DROPPED_TOPIC); None until known
    connected: bool = False
    rejected_by_sensor: dict[str, int] = field(default_factory=dict)


def sensor_spec(sensor: SensorConfig) -> SensorSpec:
    """The decoder's view of a configured sensor; printer and location become tags."""
    tags = {k: v for k, v in (("printer", sensor.printer), ("location", sensor.location)) if v}
    return SensorSpec(
        id=sensor.id,
        profile=Profile(sensor.profile),
        topic=sensor.topic,
        measurement=sensor.measurement,
        kind=sensor.kind,
        fields=tuple(FieldMap(f.path, f.field, f.scale) for f in sensor.fields),
        tags=tags,
    )


def _incoming_queue(
    stats: IngestStats, created: list[asyncio.Queue[aiomqtt.Message]]
) -> type[asyncio.Queue[aiomqtt.Message]]:
    """aiomqtt's incoming queue: unbounded for QoS 1/2 (the broker's in-flight window bounds them, as
    we ack late), QoS 0 dropped and counted beyond QOS0_QUEUE_MAX. The instance is put in `created`."""

    class IncomingQueue(asyncio.Queue[aiomqtt.Message]):
        def __init__(self, maxsize: int = 0) -> None:
            super().__init__(maxsize)
            created.append(self)

        def put_nowait(self, item: aiomqtt.Message) -> None:
            if item.qos == 0 and self.qsize() >= QOS0_QUEUE_MAX:
                stats.dropped += 1
                if stats.dropped == 1 or stats.dropped % 10_000 == 0:
                    log.warning(
                        "mqtt: %d QoS 0 messages dropped, arriving faster than they are stored", stats.dropped
                    )
                return
            super().put_nowait(item)

    return IncomingQueue


class MqttIngest:
    """Subscribes to every sensor's topic and hands each decoded reading to `out` as a line."""

    def __init__(
        self,
        config: MqttConfig,
        sensors: list[SensorConfig],
        feed: EventFeed,
    ) -> None:
        self.config = config
        self.specs = [sensor_spec(s) for s in sensors]
        self.filters = sorted({s.topic for s in self.specs})
        self.index = TopicIndex([(s.topic, s) for s in self.specs])
        self.feed = feed
        self.stats = IngestStats()
        self._last_reject_log: dict[str, float] = {}
        self._broker_drops_logged = 0
        self._broker_drops_log_at = -BROKER_DROP_LOG_INTERVAL_S

    def _tls(self) -> aiomqtt.TLSParameters | None:
        if not self.config.tls:
            return None
        ca = self.config.ca_path
        return aiomqtt.TLSParameters(
            ca_certs=str(ca) if ca else None, cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT
        )

    async def run(self, stop: asyncio.Event) -> None:
        await run_until_stopped(stop, self._loop())

    async def _loop(self) -> None:
        broker = f"{self.config.host}:{self.config.port}"
        availability = Availability(
            log,
            Backoff(1.0, self.config.reconnect_max),
            down_message=f"mqtt broker {broker} unreachable: %s",
            up_message="mqtt broker back after %.0fs",
        )
        while True:
            try:
                incoming: list[asyncio.Queue[aiomqtt.Message]] = []
                client = aiomqtt.Client(
                    self.config.host,
                    self.config.port,
                    identifier=self.config.client_id,
                    clean_session=False,  # the broker keeps our QoS 1 messages while we are away
                    username=self.config.username,
                    password=self.config.password,
                    tls_params=self._tls(),
                    keepalive=self.config.keepalive,
                    queue_type=_incoming_queue(self.stats, incoming),
                )
                # aiomqtt has no option for it (devices/mqtt.py): ack once a message's points are
                # queued (see above).
                enable_manual_acks(client)
                read_in_batches(client)  # a backlog a turn of the loop per group, not per message
                # paho hands this topic to its own callback, never to the sensors' queue: the hot
                # path stays as it is (paho matches every topic against its callbacks anyway).
                on_topic(client, BROKER_DROPPED_TOPIC, self._on_broker_dropped)
                async with client:
                    for topic_filter in self.filters:
                        await client.subscribe(topic_filter, qos=1)
                    await client.subscribe(BROKER_DROPPED_TOPIC, qos=0)
                    self.stats.connected = True
                    if availability.up() is None:
                        log.info("mqtt connected to %s, %d topics", broker, len(self.filters))
                    acks = Acks(client, batch=ACK_BATCH, delay_s=ACK_DELAY_S)
                    try:
                        await self._consume(client, incoming[0], acks)
                    finally:
                        acks.flush()  # before the disconnect: what is handled is not sent again
            except aiomqtt.MqttError as exc:
                self.stats.connected = False
                await asyncio.sleep(availability.down(exc))

    async def _consume(
        self, client: aiomqtt.Client, queue: asyncio.Queue[aiomqtt.Message], acks: Acks
    ) -> None:
        """Handle messages until the connection drops (MqttError)."""
        while True:
            if queue.empty():
                # One turn of the loop first: during a backlog the reader has usually queued the next
                # message by then, which is cheaper than aiomqtt's wait (a task and asyncio.wait each).
                await asyncio.sleep(0)
            first = queue.get_nowait() if not queue.empty() else await anext(client.messages)
            # Whatever else is already waiting is taken without a wait per message.
            for message in _waiting(first, queue):
                await self.handle(str(message.topic), _bytes(message.payload))
                acks.add(message.mid, message.qos)

    async def handle(self, topic: str, payload: bytes) -> None:
        """Decode one message for every sensor whose topic matches; count what cannot be used."""
        self.stats.received += 1
        matched = self.index.match(topic)
        if not matched:
            self.stats.unmatched += 1
            return
        received_ns = time.time_ns()
        for spec in matched:
            try:
                readings = decode(spec, topic, payload)
            except PayloadError as exc:
                self._rejected(spec.id, topic, exc)
                continue
            self.stats.decoded += 1
            if readings:
                # Waits while the InfluxDB sink is full: the message is acknowledged only after this.
                await self.feed.publish(SensorReadings(spec.id, tuple(readings), received_ns))
                self.stats.readings += len(readings)

    def _on_broker_dropped(self, _client: object, _userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            count = int(message.payload)
        except ValueError:
            return  # not mosquitto's counter; nothing to show
        self.broker_dropped(count)

    def broker_dropped(self, count: int) -> None:
        """Take the broker's count of dropped messages; warn when it has risen since the last warning."""
        self.stats.broker_dropped = count
        if count < self._broker_drops_logged:
            self._broker_drops_logged = 0  # the broker restarted: its count starts over
        now = time.monotonic()
        if (
            count > self._broker_drops_logged
            and now - self._broker_drops_log_at >= BROKER_DROP_LOG_INTERVAL_S
        ):
            log.warning(
                "mqtt broker dropped %d messages (%d since it started): a client's queue was full "
                "(mosquitto max_queued_messages / max_queued_bytes, its log names the client); "
                "sensor readings may be missing",
                count - self._broker_drops_logged,
                count,
            )
            self._broker_drops_logged = count
            self._broker_drops_log_at = now

    def _rejected(self, sensor: str, topic: str, exc: Exception) -> None:
        self.stats.rejected += 1
        count = self.stats.rejected_by_sensor.get(sensor, 0) + 1
        self.stats.rejected_by_sensor[sensor] = count
        now = time.monotonic()
        if now - self._last_reject_log.get(sensor, -REJECT_LOG_INTERVAL_S) >= REJECT_LOG_INTERVAL_S:
            self._last_reject_log[sensor] = now
            log.warning("sensor=%s topic=%s message refused (%d so far): %s", sensor, topic[:120], count, exc)


def _waiting(first: aiomqtt.Message, queue: asyncio.Queue[aiomqtt.Message]) -> Iterator[aiomqtt.Message]:
    """`first`, then the messages queued behind it, at most 1,000 (the loop gets its turn after that)."""
    yield first
    for _ in range(1000):
        if queue.empty():
            return
        yield queue.get_nowait()


def _bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()

"""The one entry point: a message on a sensor's topic → the readings it carries, or PayloadError."""

from __future__ import annotations

from collections.abc import Callable

from devices.sensors.esphome import decode_esphome
from devices.sensors.jsonmap import decode_json
from devices.sensors.model import PayloadError, Profile, Reading, SensorSpec
from devices.sensors.shelly import decode_shelly
from devices.sensors.tasmota import decode_tasmota
from devices.sensors.topics import topic_matches
from devices.sensors.zigbee2mqtt import decode_zigbee2mqtt

_Decoder = Callable[[SensorSpec, str, bytes], list[Reading]]
_DECODERS: dict[Profile, _Decoder] = {
    Profile.tasmota: decode_tasmota,
    Profile.shelly: decode_shelly,
    Profile.zigbee2mqtt: decode_zigbee2mqtt,
    Profile.esphome: decode_esphome,
    Profile.json: decode_json,
}


def decode(spec: SensorSpec, topic: str, payload: bytes) -> list[Reading]:
    """Decode one MQTT message for `spec`. [] when the message is the device's but carries nothing we
    record (status, availability, commands); PayloadError, and nothing else, for anything unusable.

    A topic outside the spec's filter is a PayloadError: it means the messages are routed wrongly.
    The size limit is checked before parsing, so ignored topics (a big retained
    `zigbee2mqtt/bridge/devices`) are [] whatever their size.
    """
    try:
        return _decode(spec, topic, payload)
    except PayloadError:
        raise
    except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        # A decoder bug must not take the ingest task down with it; it is counted and logged instead.
        raise PayloadError(f"decoder bug on this payload ({type(exc).__name__}), please report it") from exc


def _decode(spec: SensorSpec, topic: str, payload: bytes) -> list[Reading]:
    if not topic_matches(spec.topic, topic):
        raise PayloadError(
            f"topic {topic[:100]!r} does not belong to sensor {spec.id!r} (topic {spec.topic!r})"
        )
    if not isinstance(payload, bytes):
        payload = bytes(payload)  # a bytearray or memoryview from a client that does not copy
    return _DECODERS[spec.profile](spec, topic, payload)

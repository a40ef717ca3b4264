"""Sensor profiles: pure decoding of MQTT sensor telemetry (Tasmota, Shelly, Zigbee2MQTT, ESPHome, JSON)."""

from devices.sensors.dispatch import decode
from devices.sensors.model import FieldMap, FrozenMap, PayloadError, Profile, Reading, SensorSpec
from devices.sensors.topics import TopicIndex, topic_matches

__all__ = [
    "FieldMap",
    "FrozenMap",
    "PayloadError",
    "Profile",
    "Reading",
    "SensorSpec",
    "TopicIndex",
    "decode",
    "topic_matches",
]

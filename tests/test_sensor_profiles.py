"""Sensor profiles: real payload shapes decode to exact readings; anything unusable is a PayloadError."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.sensors import (
    FieldMap,
    PayloadError,
    Profile,
    Reading,
    SensorSpec,
    TopicIndex,
    decode,
    dispatch,
    topic_matches,
)

MK4 = {"printer": "mk4"}


def spec(profile: str, topic: str, **options: Any) -> SensorSpec:
    return SensorSpec(id="s1", profile=Profile(profile), topic=topic, **options)


def tags(**extra: str) -> dict[str, str]:
    return {"sensor": "s1", **extra}


def doc(value: object) -> bytes:
    return json.dumps(value).encode()


# --- Tasmota -------------------------------------------------------------------------------------------

TASMOTA_POW = (
    b'{"Time":"2024-03-01T14:05:10","ENERGY":{"TotalStartTime":"2023-11-02T09:12:44","Total":12.345,'
    b'"Yesterday":0.512,"Today":0.204,"Period":2,"Power":153,"ApparentPower":171,"ReactivePower":76,'
    b'"Factor":0.89,"Voltage":231,"Current":0.741}}'
)
TASMOTA = spec("tasmota", "tele/plug-mk4/#", tags=MK4)


def test_tasmota_energy_without_time() -> None:
    fields = {"power_w": 153.0, "energy_kwh": 12.345, "voltage_v": 231.0, "current_a": 0.741}
    expected = [Reading("power", fields, tags(printer="mk4"), None)]
    assert decode(TASMOTA, "tele/plug-mk4/SENSOR", TASMOTA_POW) == expected
    status10 = b'{"StatusSNS":' + TASMOTA_POW + b"}"
    assert decode(spec("tasmota", "+/plug-mk4/+", tags=MK4), "stat/plug-mk4/STATUS10", status10) == expected


def test_tasmota_multichannel_takes_channel_one() -> None:
    payload = doc(
        {"Time": "x", "ENERGY": {"Total": 3.2, "Power": [12, 40], "Voltage": 230, "Current": [0.09, 0.3]}}
    )
    [power] = decode(TASMOTA, "tele/plug-mk4/SENSOR", payload)
    assert power.fields == {"power_w": 12.0, "energy_kwh": 3.2, "voltage_v": 230.0, "current_a": 0.09}


def test_tasmota_time_only_with_an_offset() -> None:
    payload = doc({"Time": "2024-03-01T15:05:10+01:00", "ENERGY": {"Power": 1}})
    [power] = decode(TASMOTA, "tele/plug-mk4/SENSOR", payload)
    assert power.time == datetime(2024, 3, 1, 14, 5, 10, tzinfo=UTC)


def test_tasmota_climate_probe_not_the_chip() -> None:
    payload = b'{"Time":"2024-03-01T14:05:10","ESP32":{"Temperature":45.0},"AM2301":{"Temperature":23.4,'
    payload += b'"Humidity":41.2,"DewPoint":9.6},"TempUnit":"C"}'
    expected = Reading("environment", {"temperature_c": 23.4, "humidity_pct": 41.2}, tags(printer="mk4"))
    assert decode(TASMOTA, "tele/plug-mk4/SENSOR", payload) == [expected]
    fahrenheit = doc({"DS18B20": {"Id": "01191ED79AFF", "Temperature": 73.4}, "TempUnit": "F"})
    [env] = decode(TASMOTA, "tele/plug-mk4/SENSOR", fahrenheit)
    assert env.fields == {"temperature_c": pytest.approx(23.0)}


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("tele/plug-mk4/STATE", b'{"Time":"2024-03-01T14:05:10","Uptime":"0T01:00:00","POWER":"ON"}'),
        ("tele/plug-mk4/LWT", b"Online"),
        ("stat/plug-mk4/POWER", b"ON"),
        ("stat/plug-mk4/RESULT", b'{"POWER":"ON"}'),
        ("tele/plug-mk4/SENSOR", b'{"Time":"2024-03-01T14:05:10","Switch1":"ON"}'),
    ],
)
def test_tasmota_topics_without_readings(topic: str, payload: bytes) -> None:
    assert decode(spec("tasmota", "#"), topic, payload) == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"ENERGY":"x"}', "ENERGY is 'x', not an object"),
        (b'{"ENERGY":{"Today":1}}', "ENERGY carries none of Power, Total, Voltage, Current"),
        (b'{"ENERGY":{"Power":"abc"}}', "ENERGY.Power is not a number: 'abc'"),
        (b'{"ENERGY":{"Power":true}}', "ENERGY.Power is a boolean"),
        (b'{"ENERGY":{"Power":[[1]]}}', "ENERGY.Power[0] is a list, not a number"),
        (b'{"AM2301":{"Temperature":null,"Humidity":null}}', "AM2301 reported neither"),
        (b'{"StatusSNS":1}', "no StatusSNS"),
    ],
)
def test_tasmota_malformed(payload: bytes, message: str) -> None:
    topic = "stat/plug-mk4/STATUS10" if b"StatusSNS" in payload else "tele/plug-mk4/SENSOR"
    with pytest.raises(PayloadError, match=message.replace("[", r"\[")):
        decode(spec("tasmota", "#"), topic, payload)


# --- Shelly --------------------------------------------------------------------------------------------

PLUG_S = doc(
    {
        "id": 0,
        "source": "init",
        "output": True,
        "apower": 142.6,
        "voltage": 229.8,
        "freq": 50.0,
        "current": 0.652,
        "aenergy": {"total": 52344.112, "by_minute": [2372.116, 2381.042, 2376.583], "minute_ts": 1709301900},
        "temperature": {"tC": 38.7, "tF": 101.7},
    }
)


def test_shelly_plug_status() -> None:
    fields = {"power_w": 142.6, "voltage_v": 229.8, "current_a": 0.652, "energy_kwh": 52.344112}
    got = decode(
        spec("shelly", "shellyplusplugs-a1/#", tags=MK4), "shellyplusplugs-a1/status/switch:0", PLUG_S
    )
    assert got == [Reading("power", fields, tags(printer="mk4"), None)]


def test_shelly_ht_gen3() -> None:
    ht = spec("shelly", "shellyhtg3-b2/status/+", tags={"location": "enclosure"})
    temperature = decode(ht, "shellyhtg3-b2/status/temperature:0", b'{"id":0,"tC":21.3,"tF":70.3}')
    humidity = decode(ht, "shellyhtg3-b2/status/humidity:0", b'{"id":0,"rh":45.2}')
    assert temperature == [Reading("environment", {"temperature_c": 21.3}, tags(location="enclosure"))]
    assert humidity == [Reading("environment", {"humidity_pct": 45.2}, tags(location="enclosure"))]
    assert decode(ht, "shellyhtg3-b2/status/devicepower:0", b'{"id":0,"battery":{"V":5.9}}') == []


def test_shelly_one_channel_per_sensor() -> None:
    second = doc({"id": 1, "apower": 7.5})
    assert decode(spec("shelly", "pm2/status/+"), "pm2/status/switch:1", second) == []
    [reading] = decode(spec("shelly", "pm2/status/switch:1"), "pm2/status/switch:1", second)
    assert reading.fields == {"power_w": 7.5}


def test_shelly_rpc_notification_has_time() -> None:
    params = {"ts": 1709301912.34, "switch:0": {"id": 0, "apower": 12.1}, "switch:1": {"id": 1, "apower": 99}}
    note = doc({"src": "shellyplusplugs-a1", "method": "NotifyStatus", "params": params})
    at = datetime(2024, 3, 1, 14, 5, 12, 340000, tzinfo=UTC)
    assert decode(spec("shelly", "shellyplusplugs-a1/#"), "shellyplusplugs-a1/events/rpc", note) == [
        Reading("power", {"power_w": 12.1}, tags(), at)
    ]


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("a1/events/rpc", b'{"src":"a1","method":"NotifyEvent","params":{"ts":1709301912,"events":[]}}'),
        ("a1/events/rpc", b'{"method":"NotifyStatus","params":{"ts":1709301912,"switch:0":{"output":true}}}'),
        ("a1/online", b"true"),
        ("a1/rpc", b'{"id":1,"method":"Switch.Set","params":{"id":0,"on":true}}'),
        ("a1/status/sys", b'{"mac":"A1"}'),
    ],
)
def test_shelly_topics_without_readings(topic: str, payload: bytes) -> None:
    assert decode(spec("shelly", "a1/#"), topic, payload) == []


@pytest.mark.parametrize(
    ("topic", "payload", "message"),
    [
        ("a1/status/switch:0", b'{"id":0,"output":false}', "switch:0 carries no apower"),
        ("a1/status/temperature:0", b'{"id":0,"tC":null}', "carries no tC"),
        ("a1/status/switch:0", b'{"id":0,"aenergy":5}', "aenergy is not an object"),
        ("a1/events/rpc", b'{"method":"NotifyStatus","params":[]}', "NotifyStatus has no params"),
    ],
)
def test_shelly_malformed(topic: str, payload: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        decode(spec("shelly", "a1/#"), topic, payload)


# --- Zigbee2MQTT ---------------------------------------------------------------------------------------

Z2M_PLUG = (
    b'{"child_lock":"UNLOCK","current":0.62,"energy":41.87,"indicator_mode":"off/on","linkquality":116,'
    b'"power":139,"power_outage_memory":"restore","state":"ON","voltage":231}'
)
Z2M_AQARA = (
    b'{"battery":97,"humidity":48.61,"linkquality":87,"pressure":1002.3,"temperature":22.47,"voltage":2995}'
)


def test_zigbee2mqtt_plug_and_climate() -> None:
    plug = spec("zigbee2mqtt", "zigbee2mqtt/plug-mk4", tags=MK4)
    power = {"power_w": 139.0, "energy_kwh": 41.87, "voltage_v": 231.0, "current_a": 0.62}
    assert decode(plug, "zigbee2mqtt/plug-mk4", Z2M_PLUG) == [Reading("power", power, tags(printer="mk4"))]
    room = spec("zigbee2mqtt", "zigbee2mqtt/workshop/aqara")  # friendly names may contain "/"
    climate = {"temperature_c": 22.47, "humidity_pct": 48.61}  # battery mV is not a mains voltage
    assert decode(room, "zigbee2mqtt/workshop/aqara", Z2M_AQARA) == [Reading("environment", climate, tags())]


@pytest.mark.parametrize(
    "last_seen", ["2024-03-01T14:05:10Z", "2024-03-01T15:05:10+01:00", 1709301910000, "2024-03-01T14:05:10"]
)
def test_zigbee2mqtt_both_measurements_and_last_seen(last_seen: object) -> None:
    payload = doc({"power": 5, "temperature": 30.5, "last_seen": last_seen, "state": "ON"})
    at = None if last_seen == "2024-03-01T14:05:10" else datetime(2024, 3, 1, 14, 5, 10, tzinfo=UTC)
    assert decode(spec("zigbee2mqtt", "zigbee2mqtt/#"), "zigbee2mqtt/p", payload) == [
        Reading("power", {"power_w": 5.0}, tags(), at),
        Reading("environment", {"temperature_c": 30.5}, tags(), at),
    ]


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("zigbee2mqtt/bridge/state", b'{"state":"online"}'),
        ("zigbee2mqtt/bridge/devices", b'[{"friendly_name":"plug-mk4"}]'),
        ("zigbee2mqtt/plug-mk4/availability", b'{"state":"offline"}'),
        ("zigbee2mqtt/plug-mk4/set", b'{"state":"OFF"}'),
        ("zigbee2mqtt/plug-mk4/get", b'{"state":""}'),
        ("zigbee2mqtt/plug-mk4/set/state", b"OFF"),
        ("zigbee2mqtt/button", b'{"action":"single","battery":100,"linkquality":60,"voltage":3000}'),
        ("zigbee2mqtt/plug-mk4", b'{"power":null,"state":"OFF"}'),
    ],
)
def test_zigbee2mqtt_topics_without_readings(topic: str, payload: bytes) -> None:
    assert decode(spec("zigbee2mqtt", "zigbee2mqtt/#"), topic, payload) == []


# --- ESPHome -------------------------------------------------------------------------------------------


def test_esphome_scale_and_enclosure() -> None:
    scale = spec("esphome", "filament-scale/sensor/spool_weight/state", kind="weight", tags=MK4)
    got = decode(scale, "filament-scale/sensor/spool_weight/state", b"1234.5")
    assert got == [Reading("material", {"weight_g": 1234.5}, tags(printer="mk4"))]
    box = spec("esphome", "enclosure/#", kind="temperature", tags={"location": "box"})
    assert decode(box, "enclosure/sensor/temp/state", b"24.1") == [
        Reading("environment", {"temperature_c": 24.1}, tags(location="box"))
    ]
    for topic, payload in [("enclosure/status", b"online"), ("enclosure/switch/light/state", b"ON")]:
        assert decode(box, topic, payload) == []
    custom = spec("esphome", "lab/mains", kind="energy", measurement="mains")
    assert decode(custom, "lab/mains", b"12.25\n") == [Reading("mains", {"energy_kwh": 12.25}, tags())]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"nan", "ESPHome published nan: the sensor read failed"),
        (b"ON", "ESPHome state is not a number: 'ON'"),
        (b"", "ESPHome state is empty"),
        (b"1e400", "ESPHome state is out of range"),
        (b"inf", "ESPHome state is not a number"),
        (b"\xff\xfe", "payload is not UTF-8 text: b'\\\\xff\\\\xfe'"),
    ],
)
def test_esphome_malformed(payload: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        decode(spec("esphome", "s/sensor/w/state", kind="weight"), "s/sensor/w/state", payload)


# --- json ----------------------------------------------------------------------------------------------

METER = spec(
    "json",
    "lab/meter",
    measurement="power",
    fields=(
        FieldMap("ENERGY.Power", "power_w"),
        FieldMap("sensors.0.value", "energy_kwh", scale=0.001),
        FieldMap("missing.path", "current_a"),
    ),
    tags=MK4,
)


def test_json_mapping() -> None:
    payload = doc({"ENERGY": {"Power": "12.5"}, "sensors": [{"value": 1500}], "noise": [1, {"a": None}]})
    expected = Reading("power", {"power_w": 12.5, "energy_kwh": 1.5}, tags(printer="mk4"))
    assert decode(METER, "lab/meter", payload) == [expected]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"other": 1, "sensors": []}', "none of ENERGY.Power, sensors.0.value, missing.path is in"),
        (b'{"ENERGY": {"Power": false}}', "ENERGY.Power is a boolean"),
        (b'{"ENERGY": {"Power": {"v": 1}}}', "ENERGY.Power is an object, not a number"),
    ],
)
def test_json_malformed(payload: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        decode(METER, "lab/meter", payload)
    big = spec("json", "lab/meter", measurement="p", fields=(FieldMap("sensors.0.value", "x", 1e300),))
    with pytest.raises(PayloadError, match=r"sensors.0.value times 1e\+300 is out of range"):
        decode(big, "lab/meter", b'{"sensors": [{"value": 1e308}]}')


# --- every JSON profile: bad payloads ------------------------------------------------------------------

JSON_SPECS = [
    (TASMOTA, "tele/plug-mk4/SENSOR", "ENERGY", "Power"),
    (spec("shelly", "a1/#"), "a1/status/switch:0", "aenergy", "total"),
    (spec("zigbee2mqtt", "zigbee2mqtt/#"), "zigbee2mqtt/p", None, "power"),
    (METER, "lab/meter", "ENERGY", "Power"),
]


@pytest.mark.parametrize(
    ("sensor", "topic", "outer", "inner"), JSON_SPECS, ids=["tasmota", "shelly", "z2m", "json"]
)
def test_bad_payloads_for_every_json_profile(
    sensor: SensorSpec, topic: str, outer: str | None, inner: str
) -> None:
    def shape(value: str) -> bytes:
        body = f'{{"{inner}": {value}}}'
        return (body if outer is None else f'{{"{outer}": {body}}}').encode()

    cases = [
        (b"{" * 10 + b" " * sensor.max_payload, "over the 65536-byte limit"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b'{"Power": 1', "not JSON"),
        (b"[1, 2]", "JSON but not an object"),
        (b"12.5", "JSON but not an object"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested too deeply"),
        (b'{"a": ' + b"9" * 5000 + b"}", "not JSON"),
        (shape("NaN"), "is not a finite number: nan"),
        (shape("-Infinity"), "is not a finite number: -inf"),
        (shape("1e400"), "is not a finite number: inf"),
        (shape("1" + "0" * 400), "is out of range"),
        (shape('"abc"'), "is not a number: 'abc'"),
    ]
    for payload, message in cases:
        with pytest.raises(PayloadError, match=message) as caught:
            decode(sensor, topic, payload)
        assert len(str(caught.value)) < 200


def test_a_decoder_bug_is_still_a_payload_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(sensor: SensorSpec, topic: str, payload: bytes) -> list[Reading]:
        raise KeyError(payload)

    monkeypatch.setitem(dispatch._DECODERS, Profile.json, broken)
    with pytest.raises(PayloadError, match=r"decoder bug on this payload \(KeyError\)"):
        decode(METER, "lab/meter", b"")


def test_size_limit_only_for_messages_that_are_read() -> None:
    devices = b'[{"friendly_name":"plug-mk4"}' + b',{"x":1}' * 20_000 + b"]"
    assert decode(spec("zigbee2mqtt", "zigbee2mqtt/#"), "zigbee2mqtt/bridge/devices", devices) == []
    with pytest.raises(PayloadError, match="payload of 11 bytes is over the 10-byte limit"):
        decode(spec("esphome", "s/#", kind="weight", max_payload=10), "s/sensor/w/state", b"12345678901")


def test_topic_of_another_sensor_and_excerpts() -> None:
    with pytest.raises(PayloadError, match="topic 'tele/other/SENSOR' does not belong to sensor 's1'"):
        decode(TASMOTA, "tele/other/SENSOR", TASMOTA_POW)
    with pytest.raises(PayloadError) as caught:
        decode(spec("json", "j", measurement="m", fields=(FieldMap("a", "b"),)), "j", b"x" * 5000)
    assert len(str(caught.value)) < 140


# --- specs and topic filters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"profile": "esphome"}, "esphome needs kind"),
        ({"profile": "json", "measurement": "m"}, "needs at least one field mapping"),
        ({"profile": "json", "fields": (FieldMap("a", "b"),)}, "json profile needs a measurement"),
        ({"profile": "tasmota", "measurement": "power"}, "measurement is fixed by the tasmota profile"),
        ({"profile": "tasmota", "kind": "power"}, "kind applies to the esphome profile only"),
        ({"profile": "tasmota", "tags": {"sensor": "x"}}, "reserved"),
        ({"profile": "tasmota", "tags": {"printer": ""}}, "non-empty value"),
        ({"profile": "tasmota", "topic": "a/#/b"}, "not a valid MQTT topic filter"),
        ({"profile": "modbus"}, "profile 'modbus' is not one of"),
    ],
)
def test_spec_is_validated_at_construction(options: dict[str, Any], message: str) -> None:
    options = {"topic": "a/b", **options}
    with pytest.raises(ValueError, match=message):
        SensorSpec(id="s1", **options)


def test_spec_and_reading_are_hashable_values() -> None:
    from_config = SensorSpec("s1", "tasmota", "a", tags={"printer": "mk4"})  # type: ignore[arg-type]
    assert from_config == SensorSpec("s1", Profile.tasmota, "a", tags=MK4)
    assert from_config.profile is Profile.tasmota
    assert len({TASMOTA, TASMOTA, METER}) == 2
    assert len(set(decode(TASMOTA, "tele/plug-mk4/SENSOR", TASMOTA_POW) * 2)) == 1


@pytest.mark.parametrize(
    ("filter", "topic", "expected"),
    [
        ("sport/tennis/player1/#", "sport/tennis/player1", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
        ("sport/#", "sport", True),
        ("#", "tele/plug/SENSOR", True),
        ("#", "$SYS/broker/uptime", False),
        ("+/broker/uptime", "$SYS/broker/uptime", False),
        ("$SYS/#", "$SYS/broker/uptime", True),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("a/b", "a/b", True),
        ("a/b", "A/b", False),
        ("a/b", "a/b/c", False),
        ("sport/tennis#", "sport/tennis", False),
        ("sport/#/ranking", "sport/x/ranking", False),
        ("sp+rt", "sp+rt", False),
        ("a/+", "a/+", False),
        ("", "", False),
        ("#", "", False),
    ],
)
def test_topic_matches(filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(filter, topic) is expected


_LEVEL = st.sampled_from(["a", "b", "tele", "$SYS", "+", "#", "", "sensor"])
_PATH = st.lists(_LEVEL, min_size=1, max_size=4).map("/".join)


@settings(max_examples=400, deadline=None)
@given(filters=st.lists(_PATH, max_size=8), topic=_PATH)
def test_topic_index_matches_exactly_what_topic_matches_does(filters: list[str], topic: str) -> None:
    """The index the ingest routes by gives the same sensors, in config order, as checking each filter."""
    entries = [(f, i) for i, f in enumerate(filters)]
    assert TopicIndex(entries).match(topic) == [i for f, i in entries if topic_matches(f, topic)]


# --- properties ----------------------------------------------------------------------------------------

JSON_FUZZ = spec(
    "json", "#", measurement="m", fields=(FieldMap("ENERGY.Power", "p"), FieldMap("params.0", "q", 1e300))
)
FUZZ_SPECS = [spec(p, "#") for p in ("tasmota", "shelly", "zigbee2mqtt")] + [JSON_FUZZ]
FUZZ_SPECS += [spec("esphome", "#", kind="weight"), spec("esphome", "exact/topic", kind="power")]
DEVICE_TOPICS = ["tele/t/SENSOR", "stat/t/STATUS10", "a/status/switch:0", "a/status/temperature:0"]
DEVICE_TOPICS += ["a/events/rpc", "zigbee2mqtt/p", "s/sensor/w/state", "exact/topic"]
TASMOTA_KEYS = ["ENERGY", "Power", "Total", "Voltage", "Current", "StatusSNS", "AM2301", "ESP32", "TempUnit"]
SHELLY_KEYS = ["apower", "aenergy", "total", "tC", "rh", "method", "params", "ts", "switch:0", "humidity:0"]
Z2M_KEYS = ["power", "energy", "voltage", "current", "temperature", "humidity", "last_seen", "Temperature"]
KEYS = st.sampled_from([*TASMOTA_KEYS, *SHELLY_KEYS, *Z2M_KEYS, "0"]) | st.text(max_size=6)
SCALARS = st.none() | st.booleans() | st.integers() | st.just(10**400) | st.floats() | st.text(max_size=8)
SCALARS |= st.sampled_from(
    ["12.5", "nan", "1e400", " -3 ", "F", "NotifyStatus", "2024-03-01T14:05:10Z", "1_0"]
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)
NUMBERS = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**6), 10**6)
TIMES = st.sampled_from([1709301912.5, 1709301910000, "2024-03-01T14:05:10Z", "2024-03-01T14:05:10"])
# Mostly usable numbers, so the decoders get past the first field; then every kind of junk.
LEAVES = NUMBERS | NUMBERS.map(str) | TIMES | st.none() | st.floats() | SCALARS | JSON_VALUES


def shaped(*keys: str, **fixed: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Device-shaped objects (so the decoders reach their fields) with arbitrary values at the leaves."""
    return st.fixed_dictionaries(fixed, optional=dict.fromkeys(keys, LEAVES))


def case(
    sensor: SensorSpec, topic: str, *bodies: st.SearchStrategy[dict[str, Any]]
) -> st.SearchStrategy[Any]:
    return st.tuples(st.just(sensor), st.just(topic), st.one_of(*bodies))


ENERGY = shaped("Power", "Total", "Voltage", "Current")
SWITCH = shaped("apower", "voltage", "current", aenergy=shaped("total", "by_minute"))
NOTIFY = shaped("ts", "switch:1", **{"switch:0": SWITCH, "humidity:0": shaped("rh")})
DEVICE_CASES = st.one_of(
    case(FUZZ_SPECS[0], "tele/t/SENSOR", shaped("AM2301", "TempUnit", ENERGY=ENERGY)),
    case(FUZZ_SPECS[0], "tele/t/SENSOR", shaped("TempUnit", AM2301=shaped("Temperature", "Humidity"))),
    case(FUZZ_SPECS[1], "a/status/switch:0", SWITCH, shaped("apower", "aenergy")),
    case(FUZZ_SPECS[1], "a/status/temperature:0", shaped("tC", "rh")),
    case(FUZZ_SPECS[1], "a/events/rpc", shaped(method=st.just("NotifyStatus"), params=NOTIFY)),
    case(FUZZ_SPECS[2], "zigbee2mqtt/p", shaped(*Z2M_KEYS)),
    case(JSON_FUZZ, "j", shaped("params", ENERGY=shaped("Power"))),
)


def check(sensor: SensorSpec, topic: str, payload: bytes) -> None:
    readings: list[Reading] = []
    error = ""
    try:
        readings = decode(sensor, topic, payload)
    except PayloadError as exc:
        error = str(exc)
    assert "decoder bug" not in error
    assert len(error) < 300
    for reading in readings:
        assert isinstance(reading, Reading)
        assert reading.fields
        assert all(type(v) is float and math.isfinite(v) for v in reading.fields.values())
        assert reading.tags["sensor"] == sensor.id
        assert reading.time is None or reading.time.tzinfo is UTC


NUMBER_TEXT = (st.floats() | st.integers() | st.just(10**400)).map(lambda n: repr(n).encode())


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(FUZZ_SPECS),
    st.text(max_size=40) | st.sampled_from(DEVICE_TOPICS),
    st.binary(max_size=200),
)
def test_arbitrary_topics_and_bytes(sensor: SensorSpec, topic: str, payload: bytes) -> None:
    check(sensor, topic, payload)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FUZZ_SPECS[-2:]), st.sampled_from(DEVICE_TOPICS), NUMBER_TEXT)
def test_esphome_number_texts(sensor: SensorSpec, topic: str, payload: bytes) -> None:
    check(sensor, topic, payload)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(FUZZ_SPECS),
    st.sampled_from(DEVICE_TOPICS),
    st.dictionaries(KEYS, JSON_VALUES, max_size=6),
)
def test_arbitrary_json(sensor: SensorSpec, topic: str, body: dict[str, Any]) -> None:
    check(sensor, topic, json.dumps(body).encode())


@settings(max_examples=1000, deadline=None)
@given(DEVICE_CASES)
def test_device_shaped_json_with_arbitrary_values(device: tuple[SensorSpec, str, dict[str, Any]]) -> None:
    sensor, topic, body = device
    check(sensor, topic, json.dumps(body).encode())

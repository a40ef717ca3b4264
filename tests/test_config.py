"""Config loading: plain-sentence errors naming the key, references, influx api keys, env, the example."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tzlocal

from controller.config import EX_CONFIG, ConfigError, Role, config_warnings, load_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "deploy" / "farmctl.example.toml"


def write(tmp_path: Path, text: str, secrets: dict[str, str] | None = None) -> Path:
    for name, value in (secrets or {"p.key": "k1", "t.token": "t1"}).items():
        (tmp_path / name).write_text(value + "\n")
    path = tmp_path / "farmctl.toml"
    path.write_text(text)
    return path


MINIMAL = """
[api]
listen = "127.0.0.1:9000"
[[api.tokens]]
name = "ops"
role = "operator"
token_file = "t.token"
[[printers]]
name = "p1"
url = "http://127.0.0.1:5000"
api_key_file = "p.key"
"""


def test_example_config_loads_and_documents_every_option(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "farmctl.toml")
    (tmp_path / "secrets").mkdir()
    for name in (
        "frontdesk.token",
        "operator.token",
        "mk4-1.key",
        "ender-2.key",
        "mqtt.password",
        "influx.password",
    ):
        (tmp_path / "secrets" / name).write_text(f"secret-{name}\n")
    config = load_config(tmp_path / "farmctl.toml", env={})
    assert [p.name for p in config.printers] == ["mk4-1", "ender-2"]
    assert config.printers[0].api_key == "secret-mk4-1.key"
    assert config.api.tokens[1].role is Role.OPERATOR
    text = EXAMPLE.read_text()
    assert config.mqtt is not None
    assert config.mqtt.password == "secret-mqtt.password"
    assert config.influx is not None
    assert config.influx.secret == "secret-influx.password"
    assert [s.profile for s in config.sensors] == ["tasmota", "json", "esphome", "zigbee2mqtt"]
    sections = (
        config.controller,
        config.api,
        config.jobs,
        config.printers[0],
        config.api.tokens[0],
        config.mqtt,
        config.sensors[0],
        config.sensors[1].fields[0],
        config.influx,
    )
    for section in sections:
        for key in type(section).model_fields:
            if key not in ("tokens", "fields"):
                # "# key = " counts: the keys of the other influx api are shown commented out
                assert re.search(rf"^(# )?{key} = ", text, re.M), f"{key} is not documented in the example"
    assert config_warnings(config) == []


def test_example_influx_v2_alternative_loads(tmp_path: Path) -> None:
    head, influx = EXAMPLE.read_text().split("\n[influx]\n")
    influx = re.sub(
        r"^(api|database|retention_policy|username|password_file) = ", r"# \1 = ", influx, flags=re.M
    )
    influx = re.sub(r"^# (org|bucket|token_file) = ", r"\1 = ", influx, flags=re.M)
    (tmp_path / "farmctl.toml").write_text(f'{head}\n[influx]\napi = "v2"\n{influx}')
    (tmp_path / "secrets").mkdir()
    for name in ("frontdesk.token", "operator.token", "mk4-1.key", "ender-2.key", "mqtt.password"):
        (tmp_path / "secrets" / name).write_text(f"secret-{name}\n")
    (tmp_path / "secrets" / "influx.token").write_text("secret-influx.token\n")
    config = load_config(tmp_path / "farmctl.toml", env={})
    assert config.influx is not None
    assert (config.influx.api, config.influx.bucket, config.influx.secret) == (
        "v2",
        "farm",
        "secret-influx.token",
    )


def test_minimal_config_has_defaults_and_reads_secrets(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), env={})
    printer = config.printers[0]
    assert printer.api_key == "k1"
    assert printer.materials == ["PLA"]
    assert config.api.tokens[0].token == "t1"
    assert (config.api.host, config.api.port) == ("127.0.0.1", 9000)
    assert "k1" not in repr(config)
    assert "t1" not in repr(config)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("[api]", "[api]\nlisten_on = 1"), "api.listen_on: unknown key"),
        (('api_key_file = "p.key"', 'api_key_file = "p.key"\nnozzle = "big"'), "printers['p1'].nozzle"),
        (('api_key_file = "p.key"', 'api_key_file = "p.key"\nbuild_volume = [1, 0, 2]'), "build_volume"),
        (('role = "operator"', 'role = "root"'), "api.tokens['ops'].role"),
        (('listen = "127.0.0.1:9000"', 'listen = "nowhere"'), "api.listen"),
        (('api_key_file = "p.key"', 'api_key_file = "missing.key"'), "printers['p1'].api_key_file"),
        (('url = "http://127.0.0.1:5000"', 'url = "ftp://x"'), "printers['p1'].url"),
        (
            ("[[printers]]", "[[printers]]\nname='p1'\nurl='http://a'\napi_key_file='p.key'\n[[printers]]"),
            "duplicate printer name 'p1'",
        ),
        (("[api]", "[api\n"), "not valid TOML"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    path = write(tmp_path, MINIMAL.replace(*edit, 1))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_empty_secret_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL, {"p.key": "  ", "t.token": "t1"})
    with pytest.raises(ConfigError, match=r"printers\['p1'\].api_key_file: secret file .* is empty"):
        load_config(path, env={})


def test_env_overrides_sections_and_named_entries(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    (tmp_path / "other.key").write_text("k2")
    env = {
        "FARMCTL_CONTROLLER__POLL_INTERVAL": "2.5",
        "FARMCTL_API__LISTEN": "127.0.0.1:9100",
        "FARMCTL_PRINTERS__P1__API_KEY_FILE": str(tmp_path / "other.key"),
        "FARMCTL_PRINTERS__P1__MATERIALS": '["petg", "asa"]',
        "FARMCTL_OCTOPRINT_BIN": "/not/a/config/key",
    }
    config = load_config(path, env=env)
    assert config.controller.poll_interval == 2.5
    assert config.api.port == 9100
    assert config.printers[0].api_key == "k2"
    assert config.printers[0].materials == ["PETG", "ASA"]
    with pytest.raises(ConfigError, match="from env FARMCTL_CONTROLLER__POLL_INTERVAL"):
        load_config(path, env={"FARMCTL_CONTROLLER__POLL_INTERVAL": "-1"})
    with pytest.raises(ConfigError, match="no entry named 'nope'"):
        load_config(path, env={"FARMCTL_PRINTERS__NOPE__URL": "http://x"})


def test_cli_config_check_exits_78_with_the_key(tmp_path: Path) -> None:
    bad = write(tmp_path, MINIMAL.replace("[api]", "[api]\nbogus = 1"))
    result = subprocess.run(
        [sys.executable, "-m", "controller", "config", "check", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EX_CONFIG
    assert f"{bad}: api.bogus: unknown key" in result.stderr
    good = write(tmp_path, MINIMAL)
    result = subprocess.run(
        [sys.executable, "-m", "controller", "config", "check", str(good)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "1 printer" in result.stdout
    assert "k1" not in result.stdout + result.stderr


def test_sensor_options_must_fit_their_profile(tmp_path: Path) -> None:
    base = MINIMAL + '[mqtt]\nhost = "127.0.0.1"\n[[sensors]]\nid = "s1"\n'
    cases = {
        'topic = "tele/p/SENSOR"\nprofile = "tasmota"\nkind = "power"\n': "kind is only for esphome",
        'topic = "tele/p/SENSOR"\nprofile = "tasmota"\nmeasurement = "x"\n': "measurement is fixed",
        'topic = "esp/sensor/w/state"\nprofile = "esphome"\n': "needs kind",
        'topic = "a/b"\nprofile = "json"\nmeasurement = "power"\n': "at least one",
        'topic = "a/#/b"\nprofile = "zigbee2mqtt"\n': "not a valid MQTT topic filter",
        'topic = "a/b"\nprofile = "zigbee2mqtt"\nprinter = "nope"\n': "no printer named 'nope'",
    }
    for body, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            load_config(write(tmp_path, base + body), env={})
    no_broker = MINIMAL + '[[sensors]]\nid = "s1"\ntopic = "a"\nprofile = "zigbee2mqtt"\n'
    with pytest.raises(ConfigError, match=r"need an \[mqtt\] section"):
        load_config(write(tmp_path, no_broker), env={})


def after(anchor: str, text: str) -> tuple[str, str]:
    """An edit for MINIMAL that adds `text` on the line after `anchor`."""
    return anchor, f"{anchor}\n{text}"


KEY_FILE = 'api_key_file = "p.key"'
NAME_RULE = "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (('name = "p1"', 'name = "a b"'), f"printers['a b'].name: {NAME_RULE} (got 'a b')"),
        (
            after(KEY_FILE, "nozzle = -1"),
            "printers['p1'].nozzle: must be a number greater than 0 and at most 5 (got -1)",
        ),
        (after(KEY_FILE, 'nozzle = "big"'), "printers['p1'].nozzle: must be a number (got 'big')"),
        (
            after(KEY_FILE, "build_volume = [1, 2]"),
            "printers['p1'].build_volume: must have exactly 3 items (got [1, 2])",
        ),
        (('url = "http://127.0.0.1:5000"', ""), "printers['p1'].url: missing required key"),
        (after("[api]", "listen_on = 1"), "api.listen_on: unknown key; did you mean 'listen'?"),
        (("[[printers]]", "[[printer]]"), "printer: unknown key; did you mean 'printers'?"),
        (after("[api]", "bogus = 1"), "api.bogus: unknown key (keys here: listen, tokens, docs)"),
        (
            ("[[printers]]", "[[printers]]\nname='p1'\nurl='http://a'\napi_key_file='p.key'\n[[printers]]"),
            "printers: duplicate printer name 'p1'",
        ),
        (
            ('role = "operator"', 'role = "root"'),
            "api.tokens['ops'].role: must be one of: viewer, operator, admin (got 'root')",
        ),
        (
            ("[api]", '[controller]\nlog_level = "loud"\n[api]'),
            "controller.log_level: must be one of: debug, info, warning, error (got 'loud')",
        ),
        (
            ("[api]", "[jobs]\nmax_copies = 0\n[api]"),
            "jobs.max_copies: must be a whole number at least 1 and at most 1000 (got 0)",
        ),
        (("[api]", '[influx]\napi = "v3"\n[api]'), "influx.api: must be one of: v1, v2 (got 'v3')"),
        (
            ("[api]", '[mqtt]\nport = "x"\ntls = "maybe"\n[api]'),
            "mqtt.port: must be a whole number (got 'x')",
        ),
        (("[api]", '[mqtt]\ntls = "maybe"\n[api]'), "mqtt.tls: must be true or false (got 'maybe')"),
        (
            ('listen = "127.0.0.1:9000"', 'listen = "nowhere"'),
            "api.listen: must be HOST:PORT, e.g. 127.0.0.1:8470 (got 'nowhere')",
        ),
    ],
)
def test_typical_mistakes_read_as_plain_sentences(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    path = write(tmp_path, MINIMAL.replace(*edit, 1))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value).splitlines()[0] == f"{path}: {expected}"
    for jargon in ("should", "Value error", "(top level)", "Field required", "Input"):
        assert jargon not in str(info.value)


def test_a_named_entry_set_from_env_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"FARMCTL_PRINTERS__P1__NOZZLE": "-1"})
    assert str(info.value) == (
        f"{path}: printers['p1'].nozzle (from env FARMCTL_PRINTERS__P1__NOZZLE): "
        "must be a number greater than 0 and at most 5 (got -1)"
    )


SENSORS = """
[mqtt]
host = "127.0.0.1"
[[sensors]]
id = "plug-1"
topic = "tele/plug-1/SENSOR"
profile = "tasmota"
[[sensors]]
id = "scale-1"
topic = "scales/sensor/w/state"
profile = "esphome"
kind = "weight"
printer = "p1"
"""


@pytest.mark.parametrize(
    ("printer_keys", "sensors", "expected"),
    [
        (
            'plug = "plug-9"',
            SENSORS,
            "printers['p1'].plug: no sensor with id 'plug-9' (sensors: plug-1, scale-1)",
        ),
        (
            'plug = "plug-1"\nscale = "scale"',
            SENSORS,
            "printers['p1'].scale: no sensor with id 'scale' (sensors: plug-1, scale-1)",
        ),
        (
            'scale = "scale-1"',
            "",
            "printers['p1'].scale: no sensor with id 'scale-1' (there are no [[sensors]])",
        ),
        (
            'plug = "plug-1"',
            SENSORS.replace('printer = "p1"', 'printer = "p2"'),
            "sensors['scale-1'].printer: no printer named 'p2' (printers: p1)",
        ),
    ],
)
def test_plug_and_scale_must_name_a_sensor(
    tmp_path: Path, printer_keys: str, sensors: str, expected: str
) -> None:
    path = write(tmp_path, MINIMAL.replace(KEY_FILE, f"{KEY_FILE}\n{printer_keys}") + sensors)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: {expected}"


def test_plug_and_scale_naming_sensors_load(tmp_path: Path) -> None:
    text = MINIMAL.replace(KEY_FILE, f'{KEY_FILE}\nplug = "plug-1"\nscale = "scale-1"') + SENSORS
    config = load_config(write(tmp_path, text), env={})
    assert (config.printers[0].plug, config.printers[0].scale) == ("plug-1", "scale-1")


@pytest.mark.parametrize(
    ("influx", "expected"),
    [
        (
            'api = "v1"\ntoken_file = "t.token"',
            'influx.token_file: token_file is for api = "v2" only, but this [influx] has api = "v1": '
            'remove token_file or set api = "v2"',
        ),
        (
            'org = "workshop"',
            'influx.org: org is for api = "v2" only, but this [influx] has api = "v1" (the default): '
            'remove org or set api = "v2"',
        ),
        (
            'api = "v2"\nbucket = "farm"\ntoken_file = "t.token"\ndatabase = "farm"',
            'influx.database: database is for api = "v1" only, but this [influx] has api = "v2": '
            'remove database or set api = "v1"',
        ),
        (
            'api = "v2"\nbucket = "farm"\ntoken_file = "t.token"\npassword_file = "p.key"',
            'influx.password_file: password_file is for api = "v1" only, but this [influx] has api = "v2": '
            'remove password_file or set api = "v1"',
        ),
        ('api = "v2"\ntoken_file = "t.token"', 'influx.bucket: missing required key for api = "v2"'),
    ],
)
def test_influx_refuses_the_other_apis_keys(tmp_path: Path, influx: str, expected: str) -> None:
    path = write(tmp_path, f"{MINIMAL}[influx]\n{influx}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: {expected}"


def test_influx_defaults_are_not_keys_set(tmp_path: Path) -> None:
    v2 = 'api = "v2"\norg = "w"\nbucket = "farm"\ntoken_file = "t.token"'
    config = load_config(write(tmp_path, f"{MINIMAL}[influx]\n{v2}\n"), env={})
    assert config.influx is not None
    assert (config.influx.api, config.influx.secret) == ("v2", "t1")


def test_example_documents_every_costs_option(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "farmctl.toml")
    (tmp_path / "secrets").mkdir()
    for name in ("frontdesk.token", "operator.token", "mk4-1.key", "ender-2.key", "mqtt.password"):
        (tmp_path / "secrets" / name).write_text(f"secret-{name}\n")
    (tmp_path / "secrets" / "influx.password").write_text("secret\n")
    costs = load_config(tmp_path / "farmctl.toml", env={}).costs
    assert (costs.energy_per_kwh, costs.co2_g_per_kwh, costs.machine_hour) == (0.30, 380.0, 0.50)
    assert [(w.start, w.end, w.days) for w in costs.energy_windows] == [
        ("22:00", "06:00", None),
        ("06:00", "22:00", ["sat", "sun"]),
    ]
    assert {name: price.per_kg for name, price in costs.materials.items()} == {"PLA": 25.0, "PETG": 28.0}
    text = EXAMPLE.read_text()
    assert "[[costs.energy_windows]]" in text
    assert "[costs.materials.PLA]" in text
    for section in (costs, costs.energy_windows[0], costs.materials["PLA"]):
        for key in type(section).model_fields:
            if key not in ("energy_windows", "materials"):
                assert re.search(rf"^(# )?{key} = ", text, re.M), f"{key} is not documented in the example"


WINDOW = '[[costs.energy_windows]]\nstart = "22:00"\nend = "06:00"\nper_kwh = 0.2\n'


@pytest.mark.parametrize(
    ("costs", "expected"),
    [
        (
            "co2_g_per_kwh = 400\nco2_sensor = 'grid'",
            "costs.co2_sensor: set co2_g_per_kwh (a constant) or co2_sensor (a grid-intensity sensor), "
            "not both",
        ),
        (
            WINDOW,
            "costs.energy_per_kwh: energy_windows need energy_per_kwh, the price outside the windows",
        ),
        (
            f'energy_per_kwh = 0.3\n{WINDOW}[[costs.energy_windows]]\nstart = "05:00"\nend = "07:00"\n'
            "per_kwh = 0.25",
            "costs.energy_windows[1]: overlaps energy_windows[0] (22:00-06:00): both apply from mon 05:00 "
            "on; each time of day may have one price only",
        ),
        (
            f'energy_per_kwh = 0.3\n{WINDOW}[[costs.energy_windows]]\nstart = "00:00"\nend = "24:00"\n'
            'per_kwh = 0.15\ndays = ["Sat"]',
            "costs.energy_windows[1]: overlaps energy_windows[0] (22:00-06:00): both apply from sat 00:00 "
            "on; each time of day may have one price only",
        ),
        (
            f"energy_per_kwh = 0.3\n{WINDOW.replace('22:00', '25:00')}",
            'costs.energy_windows[0].start: must be a time of day "HH:MM", e.g. "22:00" (got \'25:00\')',
        ),
        (
            f"energy_per_kwh = 0.3\n{WINDOW.replace('06:00', '6:00')}",
            'costs.energy_windows[0].end: must be a time of day "HH:MM", e.g. "22:00", or "24:00" for the '
            "end of the day (got '6:00')",
        ),
        (
            f"energy_per_kwh = 0.3\n{WINDOW.replace('06:00', '22:00')}",
            'costs.energy_windows[0].end: end equals start: for a whole day use start = "00:00", '
            'end = "24:00"',
        ),
        (
            f'energy_per_kwh = 0.3\n{WINDOW}days = ["fr"]',
            "costs.energy_windows[0].days[0]: must be one of: mon, tue, wed, thu, fri, sat, sun (got 'fr')",
        ),
        (
            'timezone = "Mars/Olympus"',
            'costs.timezone: must be an IANA time zone name, e.g. "Europe/Berlin" or "UTC" '
            "(got 'Mars/Olympus')",
        ),
        (
            "[costs.materials.pla]\nper_kg = 20\n[costs.materials.PLA]\nper_kg = 25",
            "costs.materials: material PLA is given twice (names are not case-sensitive) (got a table)",
        ),
        (
            "[costs.materials.PLA]\nper_kg = -1",
            "costs.materials.PLA.per_kg: must be a number at least 0 (got -1)",
        ),
        ('energy_per_kwh = "cheap"', "costs.energy_per_kwh: must be a number (got 'cheap')"),
        ("machine_hours = 1", "costs.machine_hours: unknown key; did you mean 'machine_hour'?"),
    ],
)
def test_bad_costs_name_the_key(tmp_path: Path, costs: str, expected: str) -> None:
    path = write(tmp_path, f"{MINIMAL}[costs]\n{costs}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: {expected}"


def test_costs_load_with_their_zone(tmp_path: Path) -> None:
    text = f'{MINIMAL}[costs]\nenergy_per_kwh = 0.3\ntimezone = "Europe/Berlin"\n{WINDOW}'
    costs = load_config(write(tmp_path, text), env={"FARMCTL_COSTS__MACHINE_HOUR": "1.5"}).costs
    assert str(costs.zone) == "Europe/Berlin"
    assert costs.machine_hour == 1.5
    assert (costs.energy_windows[0].start_minute, costs.energy_windows[0].end_minute) == (1320, 360)
    # Without timezone: the machine's own zone, as the tz database names it.
    assert str(load_config(write(tmp_path, MINIMAL), env={}).costs.zone) == str(tzlocal.get_localzone())


GRID = """
[mqtt]
host = "127.0.0.1"
[[sensors]]
id = "grid"
topic = "grid/intensity"
profile = "json"
measurement = "grid"
[[sensors.fields]]
path = "carbonIntensity"
field = "co2_g_per_kwh"
[[sensors]]
id = "plug-1"
topic = "tele/plug-1/SENSOR"
profile = "tasmota"
"""


@pytest.mark.parametrize(
    ("sensor", "expected"),
    [
        ("grid", None),
        (
            "plug-1",
            "sensor 'plug-1' must be a json sensor with a [[sensors.fields]] entry field = \"co2_g_per_kwh\" "
            "(the grid intensity in g/kWh)",
        ),
        ("nope", "no sensor with id 'nope' (sensors: grid, plug-1)"),
    ],
)
def test_co2_sensor_must_be_a_grid_intensity_sensor(
    tmp_path: Path, sensor: str, expected: str | None
) -> None:
    path = write(tmp_path, f'{MINIMAL}[costs]\nco2_sensor = "{sensor}"\n{GRID}')
    if expected is None:
        config = load_config(path, env={})
        assert config.costs.co2_sensor_problem(config.sensors) is None
        return
    with pytest.raises(ConfigError) as refused:
        load_config(path, env={})
    assert str(refused.value) == f"{path}: costs.co2_sensor: {expected}"

"""Config loading: unknown keys, wrong types, missing secrets, env overrides, the example file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controller.config import EX_CONFIG, ConfigError, Role, load_config

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
                assert f"\n{key} = " in text, f"{key} is not documented in the example"


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

"""config_warnings: a config that loads but exposes the API or sends secrets unencrypted."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from controller.config import Config, config_warnings


@pytest.mark.parametrize(
    ("listen", "warned"),
    [
        ("0.0.0.0:8470", True),
        ("192.168.1.20:8470", True),
        ("[::]:8470", True),
        ("printhost.local:8470", True),
        ("127.0.0.1:8470", False),
        ("127.0.1.1:8470", False),
        ("localhost:8470", False),
        ("[::1]:8470", False),
    ],
)
def test_warns_when_the_api_is_reachable_from_the_network(listen: str, warned: bool) -> None:
    warnings = config_warnings(Config.model_validate({"api": {"listen": listen}}))
    expected = (
        f"api.listen {listen} is reachable from the network without TLS: "
        "put a TLS reverse proxy in front or listen on 127.0.0.1"
    )
    assert warnings == ([expected] if warned else [])


def test_warns_when_mqtt_or_influx_credentials_travel_unencrypted() -> None:
    def warnings(mqtt: Mapping[str, object], influx: Mapping[str, object]) -> list[str]:
        return config_warnings(Config.model_validate({"mqtt": mqtt, "influx": influx}))

    lan_mqtt = {"host": "10.0.0.5", "password_file": "m.pw"}
    lan_influx = {"url": "http://10.0.0.6:8086", "password_file": "i.pw"}
    assert warnings(lan_mqtt, lan_influx) == [
        "mqtt: the password goes to 10.0.0.5:1883 unencrypted: "
        "set tls = true (the broker's TLS port, usually 8883) or use a broker on 127.0.0.1",
        "influx: the password goes to http://10.0.0.6:8086 unencrypted: use an https:// url",
    ]
    assert warnings({**lan_mqtt, "tls": True}, {**lan_influx, "url": "https://10.0.0.6:8086"}) == []
    assert warnings({"host": "10.0.0.5"}, {"url": "http://10.0.0.6:8086"}) == []  # nothing secret to leak
    assert warnings({**lan_mqtt, "host": "localhost"}, {**lan_influx, "url": "http://127.0.0.1:8086"}) == []


def test_warns_about_open_docs_and_hides_url_credentials() -> None:
    open_docs = config_warnings(Config.model_validate({"api": {"docs": "open", "listen": "0.0.0.0:8470"}}))
    assert open_docs[1:] == [
        'api.docs = "open" serves the API documents without a token on 0.0.0.0:8470: '
        'use docs = "token" unless the network is trusted'
    ]
    assert config_warnings(Config.model_validate({"api": {"docs": "open"}})) == []  # loopback only
    influx = {"url": "http://farm:s3cret@10.0.0.6:8086", "password_file": "i.pw"}
    (warning,) = config_warnings(Config.model_validate({"influx": influx}))
    assert "s3cret" not in warning
    assert "http://***@10.0.0.6:8086" in warning

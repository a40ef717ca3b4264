"""config_warnings: things a valid config allows that a workshop probably does not want."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from controller.config.models import Config
from devices.urls import redact_url


def config_warnings(config: Config) -> list[str]:
    """Plain-sentence warnings about a config that loads but exposes the farm or its secrets; [] if none."""
    warnings: list[str] = []
    if not _is_loopback(config.api.host):
        warnings.append(
            f"api.listen {config.api.listen} is reachable from the network without TLS: "
            "put a TLS reverse proxy in front or listen on 127.0.0.1"
        )
        if config.api.docs == "open":
            warnings.append(
                f'api.docs = "open" serves the API documents without a token on {config.api.listen}: '
                'use docs = "token" unless the network is trusted'
            )
    mqtt = config.mqtt
    if mqtt is not None and mqtt.password_file is not None and not mqtt.tls and not _is_loopback(mqtt.host):
        warnings.append(
            f"mqtt: the password goes to {mqtt.host}:{mqtt.port} unencrypted: "
            "set tls = true (the broker's TLS port, usually 8883) or use a broker on 127.0.0.1"
        )
    influx = config.influx
    if influx is not None:
        secret = influx.token_file if influx.api == "v2" else influx.password_file
        url = urlsplit(influx.url)
        if secret is not None and url.scheme == "http" and not _is_loopback(url.hostname or ""):
            what = "token" if influx.api == "v2" else "password"
            shown = redact_url(influx.url)
            warnings.append(f"influx: the {what} goes to {shown} unencrypted: use an https:// url")
    return warnings


def _is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (also as ::ffff:127.x) and localhost; any other name may resolve off this host."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback

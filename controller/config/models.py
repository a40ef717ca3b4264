"""The farmctl.toml sections as pydantic models, with the checks that span keys and sections."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from controller.config.base import Section as _Section
from controller.config.costs import AccountingConfig, CostsConfig
from controller.config.errors import IDENTIFIER, NAME, URL, key_error
from controller.config.members import MemberConfig, MembershipConfig
from controller.config.notify import NotifyConfig
from devices.sensors.topics import valid_filter


class Role(StrEnum):
    """API token roles, each including the rights of the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


class ControllerConfig(_Section):
    """`[controller]`: daemon-wide settings."""

    state_dir: Path = Path("/var/lib/farmctl")
    poll_interval: float = Field(5.0, gt=0, le=3600)
    reconcile_interval: float = Field(30.0, gt=0, le=3600)
    request_timeout: float = Field(10.0, gt=0, le=300)
    offline_backoff_max: float = Field(60.0, gt=0, le=3600)
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class JobsConfig(_Section):
    """`[jobs]`: the print queue: upload limits, dispatch pacing and the retry policy."""

    upload_limit_mb: float = Field(512.0, gt=0, le=8192)
    max_copies: int = Field(100, ge=1, le=1000)
    dispatch_interval: float = Field(2.0, gt=0, le=600)
    min_start_gap: float = Field(0.0, ge=0, le=86400)
    offline_grace: float = Field(60.0, ge=0, le=86400)
    retry_after_error: int = Field(1, ge=0, le=10)
    retry_after_offline: int = Field(0, ge=0, le=10)

    @property
    def upload_limit(self) -> int:
        """The upload limit in bytes."""
        return int(self.upload_limit_mb * 1024 * 1024)


class TokenConfig(_Section):
    """`[[api.tokens]]`: one bearer token and the role it grants."""

    name: str = Field(pattern=NAME)
    role: Role
    token_file: Path
    _token: SecretStr = PrivateAttr(default=SecretStr(""))

    @property
    def token(self) -> str:
        return self._token.get_secret_value()


class ApiConfig(_Section):
    """`[api]`: the HTTP API the CLI and web page talk to."""

    listen: str = "127.0.0.1:8470"
    tokens: list[TokenConfig] = Field(default_factory=list)
    # /docs and /openapi.json: "token" needs a token like every endpoint but /healthz,
    # "open" serves them to anyone (a trusted LAN), "off" does not serve them at all.
    docs: Literal["token", "open", "off"] = "token"

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8470")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        _require_unique([t.name for t in self.tokens], "tokens", "token name")
        return self

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class PrinterConfig(_Section):
    """`[[printers]]`: one OctoPrint instance and what its printer can do."""

    name: str = Field(pattern=NAME)
    url: str = Field(pattern=URL)
    api_key_file: Path
    group: str = Field("default", pattern=NAME)
    materials: list[str] = Field(default_factory=lambda: ["PLA"], min_length=1)
    nozzle: float = Field(0.4, gt=0, le=5)
    build_volume: tuple[float, float, float] = (220.0, 220.0, 250.0)
    plug: str | list[str] | None = Field(
        None, description="The [[sensors]] id of its smart plug, or a list (printer, enclosure, dryer)"
    )
    scale: str | None = None
    _api_key: SecretStr = PrivateAttr(default=SecretStr(""))

    @property
    def api_key(self) -> str:
        return self._api_key.get_secret_value()

    @property
    def plugs(self) -> list[str]:
        """The sensor ids of every plug metering this printer (`plug` as a list)."""
        if self.plug is None:
            return []
        return [self.plug] if isinstance(self.plug, str) else list(self.plug)

    @field_validator("materials")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [m.strip().upper() for m in value]

    @field_validator("build_volume")
    @classmethod
    def _positive(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(value) <= 0:
            raise ValueError("every dimension (x, y, z in mm) must be greater than 0")
        return value


class MqttConfig(_Section):
    """`[mqtt]`: the broker sensors publish to. Without this section, no sensor ingest."""

    host: str = "127.0.0.1"
    port: int = Field(1883, gt=0, lt=65536)
    client_id: str = Field("farmctl", pattern=NAME)
    username: str | None = None
    password_file: Path | None = None
    tls: bool = False
    ca_file: Path | None = None
    keepalive: int = Field(30, ge=5, le=3600)
    reconnect_max: float = Field(30.0, gt=0, le=3600)
    _password: SecretStr | None = PrivateAttr(default=None)
    _ca_path: Path | None = PrivateAttr(default=None)

    @property
    def password(self) -> str | None:
        return self._password.get_secret_value() if self._password else None

    @property
    def ca_path(self) -> Path | None:
        """ca_file resolved against the config file's folder."""
        return self._ca_path or self.ca_file


class FieldMapConfig(_Section):
    """One number picked from a JSON payload (profile = "json")."""

    path: str = Field(min_length=1)
    field: str = Field(pattern=IDENTIFIER)
    scale: float = 1.0


SensorProfile = Literal["tasmota", "shelly", "zigbee2mqtt", "esphome", "json"]
SensorKind = Literal["power", "energy", "voltage", "current", "weight", "temperature", "humidity"]


class SensorConfig(_Section):
    """`[[sensors]]`: one plug, scale or room sensor on MQTT, bound to a printer or a location."""

    id: str = Field(pattern=NAME)
    topic: str = Field(min_length=1, max_length=256)
    profile: SensorProfile
    printer: str | None = None
    location: str | None = Field(None, pattern=NAME)
    kind: SensorKind | None = None
    measurement: str | None = Field(None, pattern=IDENTIFIER)
    fields: list[FieldMapConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _profile_needs(self) -> Self:
        if self.profile == "esphome" and self.kind is None:
            raise key_error("kind", "an esphome sensor needs kind (power, energy, weight, temperature, …)")
        if self.profile != "esphome" and self.kind is not None:
            raise key_error("kind", "kind is only for esphome sensors (their payload is one bare number)")
        if self.profile not in ("esphome", "json") and self.measurement is not None:
            message = f"measurement is fixed by the {self.profile} profile; set it only for json"
            raise key_error("measurement", message)
        if self.profile == "json" and (not self.measurement or not self.fields):
            key = "fields" if self.measurement else "measurement"
            raise key_error(key, "a json sensor needs measurement and at least one [[sensors.fields]]")
        if not valid_filter(self.topic):
            rule = "'+' and '#' fill a whole level, '#' only the last"
            raise key_error("topic", f"is not a valid MQTT topic filter: {rule} (got {self.topic!r})")
        return self


_INFLUX_KEYS = {
    "v1": ("database", "retention_policy", "username", "password_file"),
    "v2": ("org", "bucket", "token_file"),
}


class InfluxConfig(_Section):
    """`[influx]`: where printers, sensors and jobs are written. Without this section, nothing is."""

    api: Literal["v1", "v2"] = "v1"
    url: str = Field("http://127.0.0.1:8086", pattern=URL)
    # v2 (InfluxDB 2.x/3.x, 1.8+, VictoriaMetrics)
    org: str = ""
    bucket: str = ""
    token_file: Path | None = None
    # v1 (InfluxDB 1.x)
    database: str = "farm"
    retention_policy: str | None = None
    username: str | None = None
    password_file: Path | None = None
    batch_size: int = Field(5000, ge=1, le=100_000)
    flush_interval: float = Field(1.0, gt=0, le=600)
    timeout: float = Field(10.0, gt=0, le=300)
    retry_max: float = Field(30.0, gt=0, le=3600)
    spool_max_mb: float = Field(256.0, gt=0, le=65536)
    printer_interval: float = Field(10.0, gt=0, le=3600)
    _secret: SecretStr | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _api_needs(self) -> Self:
        # Keys the user wrote (not defaults): a v2 token_file under api = "v1" would be silently ignored.
        for api, keys in _INFLUX_KEYS.items():
            for key in keys:
                if api != self.api and key in self.model_fields_set:
                    default = "" if "api" in self.model_fields_set else " (the default)"
                    message = f'{key} is for api = "{api}" only, but this [influx] has api = "{self.api}"'
                    raise key_error(key, f'{message}{default}: remove {key} or set api = "{api}"')
        if self.api == "v2" and (not self.bucket or self.token_file is None):
            raise key_error(
                "bucket" if not self.bucket else "token_file", 'missing required key for api = "v2"'
            )
        return self

    @property
    def secret(self) -> str | None:
        """The v2 token or the v1 password."""
        return self._secret.get_secret_value() if self._secret else None


class Config(_Section):
    """The whole farmctl.toml."""

    controller: ControllerConfig = Field(default_factory=ControllerConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    printers: list[PrinterConfig] = Field(default_factory=list)
    mqtt: MqttConfig | None = None
    sensors: list[SensorConfig] = Field(default_factory=list)
    influx: InfluxConfig | None = None
    costs: CostsConfig = Field(default_factory=CostsConfig)
    accounting: AccountingConfig = Field(default_factory=AccountingConfig)
    members: list[MemberConfig] = Field(default_factory=list)
    membership: MembershipConfig = Field(default_factory=MembershipConfig)
    notify: NotifyConfig | None = None

    @model_validator(mode="after")
    def _references(self) -> Self:
        _require_unique([p.name for p in self.printers], "printers", "printer name")
        _require_unique([s.id for s in self.sensors], "sensors", "sensor id")
        names = [p.name for p in self.printers]
        for i, sensor in enumerate(self.sensors):
            if sensor.printer is not None and sensor.printer not in names:
                message = f"no printer named {sensor.printer!r} ({_listing('printers', names)})"
                raise key_error(("sensors", i, "printer"), message)
        ids = [s.id for s in self.sensors]
        for i, printer in enumerate(self.printers):
            bound = [("plug", plug) for plug in printer.plugs] + [("scale", printer.scale)]
            for key, sensor_id in bound:
                if sensor_id is not None and sensor_id not in ids:
                    message = f"no sensor with id {sensor_id!r} ({_listing('sensors', ids)})"
                    raise key_error(("printers", i, key), message)
        _require_unique([m.name for m in self.members], "members", "member name")
        problem = self.costs.co2_sensor_problem(self.sensors)
        if problem is not None:
            raise key_error(("costs", "co2_sensor"), problem)
        if self.sensors and self.mqtt is None:
            raise key_error("sensors", "[[sensors]] need an [mqtt] section (the broker they publish to)")
        return self


def _require_unique(names: list[str], key: str, what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise key_error(key, f"duplicate {what} {name!r}")
        seen.add(name)


def _listing(section: str, names: list[str], most: int = 10) -> str:
    """'sensors: plug-1, scale-1' for a not-found message, shortened for a big farm."""
    if not names:
        return f"there are no [[{section}]]"
    more = ", …" if len(names) > most else ""
    return f"{section}: {', '.join(names[:most])}{more}"

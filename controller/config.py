"""Configuration: TOML into pydantic models, env overrides, secrets read from files.

Every error names the file and the key; the CLI turns a ConfigError into exit code 78 (EX_CONFIG).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from devices.sensors.topics import valid_filter

EX_CONFIG = 78  # sysexits: bad configuration
EX_UNAVAILABLE = 69  # sysexits: a service (port, daemon) is not available
ENV_PREFIX = "FARMCTL_"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class ConfigError(Exception):
    """Bad configuration; the message names the file and the key."""


class Role(StrEnum):
    """API token roles, each including the rights of the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ControllerConfig(_Section):
    """`[controller]`: daemon-wide settings."""

    state_dir: Path = Path("/var/lib/farmctl")
    poll_interval: float = Field(5.0, gt=0, le=3600)
    reconcile_interval: float = Field(30.0, gt=0, le=3600)
    request_timeout: float = Field(10.0, gt=0, le=300)
    offline_backoff_max: float = Field(60.0, gt=0, le=3600)
    log_level: str = Field("info", pattern="^(debug|info|warning|error)$")


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

    name: str = Field(pattern=_NAME)
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

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8470")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        _require_unique([t.name for t in self.tokens], "token name")
        return self

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class PrinterConfig(_Section):
    """`[[printers]]`: one OctoPrint instance and what its printer can do."""

    name: str = Field(pattern=_NAME)
    url: str = Field(pattern=r"^https?://[^/\s]+(/\S*)?$")
    api_key_file: Path
    group: str = Field("default", pattern=_NAME)
    materials: list[str] = Field(default_factory=lambda: ["PLA"], min_length=1)
    nozzle: float = Field(0.4, gt=0, le=5)
    build_volume: tuple[float, float, float] = (220.0, 220.0, 250.0)
    plug: str | None = None
    scale: str | None = None
    _api_key: SecretStr = PrivateAttr(default=SecretStr(""))

    @property
    def api_key(self) -> str:
        return self._api_key.get_secret_value()

    @field_validator("materials")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [m.strip().upper() for m in value]

    @field_validator("build_volume")
    @classmethod
    def _positive(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(value) <= 0:
            raise ValueError("every build volume dimension (x, y, z in mm) must be > 0")
        return value


class MqttConfig(_Section):
    """`[mqtt]`: the broker sensors publish to. Without this section, no sensor ingest."""

    host: str = "127.0.0.1"
    port: int = Field(1883, gt=0, lt=65536)
    client_id: str = Field("farmctl", pattern=_NAME)
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
    field: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    scale: float = 1.0


SensorProfile = Literal["tasmota", "shelly", "zigbee2mqtt", "esphome", "json"]
SensorKind = Literal["power", "energy", "voltage", "current", "weight", "temperature", "humidity"]


class SensorConfig(_Section):
    """`[[sensors]]`: one plug, scale or room sensor on MQTT, bound to a printer or a location."""

    id: str = Field(pattern=_NAME)
    topic: str = Field(min_length=1, max_length=256)
    profile: SensorProfile
    printer: str | None = None
    location: str | None = Field(None, pattern=_NAME)
    kind: SensorKind | None = None
    measurement: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    fields: list[FieldMapConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _profile_needs(self) -> Self:
        if self.profile == "esphome" and self.kind is None:
            raise ValueError("an esphome sensor needs kind (power, energy, weight, temperature, …)")
        if self.profile != "esphome" and self.kind is not None:
            raise ValueError("kind is only for esphome sensors (their payload is one bare number)")
        if self.profile not in ("esphome", "json") and self.measurement is not None:
            raise ValueError(f"measurement is fixed by the {self.profile} profile; set it only for json")
        if self.profile == "json" and (not self.measurement or not self.fields):
            raise ValueError("a json sensor needs measurement and at least one [[sensors.fields]]")
        if not valid_filter(self.topic):
            raise ValueError(f"topic {self.topic!r} is not a valid MQTT topic filter")
        return self


class InfluxConfig(_Section):
    """`[influx]`: where printers, sensors and jobs are written. Without this section, nothing is."""

    api: Literal["v1", "v2"] = "v1"
    url: str = Field("http://127.0.0.1:8086", pattern=r"^https?://[^/\s]+(/\S*)?$")
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
        if self.api == "v2" and (not self.bucket or self.token_file is None):
            raise ValueError('api = "v2" needs bucket and token_file (and org for InfluxDB 2.x)')
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

    @model_validator(mode="after")
    def _unique_printers(self) -> Self:
        _require_unique([p.name for p in self.printers], "printer name")
        _require_unique([s.id for s in self.sensors], "sensor id")
        names = {p.name for p in self.printers}
        for sensor in self.sensors:
            if sensor.printer is not None and sensor.printer not in names:
                raise ValueError(f"sensor {sensor.id!r}: no printer named {sensor.printer!r}")
        if self.sensors and self.mqtt is None:
            raise ValueError("[[sensors]] need an [mqtt] section")
        return self


def _require_unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate {what} {name!r}")
        seen.add(name)


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, override from env, validate and resolve secrets; raise ConfigError naming the key."""
    env = os.environ if env is None else env
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    origins = _apply_env(raw, env, path)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, raw, path, origins)) from None
    _read_secrets(config, path.parent, path)
    return config


def _apply_env(raw: dict[str, Any], env: Mapping[str, str], path: Path) -> dict[str, str]:
    """Apply FARMCTL_SECTION__KEY and FARMCTL_PRINTERS__<NAME>__KEY overrides; return key → var."""
    origins: dict[str, str] = {}
    for var, value in sorted(env.items()):
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        parts = [p.lower() for p in var[len(ENV_PREFIX) :].split("__")]
        target: Any = raw
        keys: list[str] = []
        for part in parts[:-1]:
            if isinstance(target, list):
                match = [t for t in target if _env_name(t.get("name", "")) == part]
                if not match:
                    raise ConfigError(f"{path}: env {var}: no entry named {part!r} in {keys[-1]}")
                target = match[0]
                keys.append(str(match[0]["name"]))
            else:
                target = target.setdefault(part, {})
                keys.append(part)
        if not isinstance(target, dict):
            raise ConfigError(f"{path}: env {var}: {'.'.join(keys)} is not a table")
        target[parts[-1]] = _env_value(value)
        origins[".".join([*keys, parts[-1]])] = var
    return origins


def _env_name(name: object) -> str:
    return str(name).lower().replace("-", "_").replace(".", "_")


def _env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _describe(exc: ValidationError, raw: dict[str, Any], path: Path, origins: dict[str, str]) -> str:
    lines = []
    for err in exc.errors():
        key = _key_name(err["loc"], raw)
        origin = origins.get(key)
        where = f" (from env {origin})" if origin else ""
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{path}: {key}{where}: {message}")
    return "\n".join(lines)


def _key_name(loc: tuple[int | str, ...], raw: dict[str, Any]) -> str:
    """('printers', 1, 'nozzle') → 'printers[1].nozzle', or printers['mk4'].nozzle when named."""
    out = ""
    node: Any = raw
    for part in loc:
        if isinstance(part, int):
            name = node[part].get("name") if isinstance(node, list) and part < len(node) else None
            out += f"[{name!r}]" if isinstance(name, str) else f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return out or "(top level)"


def _read_secret(file: Path, base: Path, key: str, path: Path) -> SecretStr:
    full = file if file.is_absolute() else base / file
    try:
        text = full.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{path}: {key}: cannot read secret file {full}: {exc.strerror}") from None
    if not text:
        raise ConfigError(f"{path}: {key}: secret file {full} is empty")
    return SecretStr(text)


def _read_secrets(config: Config, base: Path, path: Path) -> None:
    for printer in config.printers:
        key = f"printers[{printer.name!r}].api_key_file"
        printer._api_key = _read_secret(printer.api_key_file, base, key, path)
    for token in config.api.tokens:
        key = f"api.tokens[{token.name!r}].token_file"
        token._token = _read_secret(token.token_file, base, key, path)
    if config.mqtt is not None and config.mqtt.password_file is not None:
        config.mqtt._password = _read_secret(config.mqtt.password_file, base, "mqtt.password_file", path)
    if config.mqtt is not None and config.mqtt.ca_file is not None:
        ca = config.mqtt.ca_file if config.mqtt.ca_file.is_absolute() else base / config.mqtt.ca_file
        if config.mqtt.tls and not ca.is_file():
            raise ConfigError(f"{path}: mqtt.ca_file: no such file {ca}")
        config.mqtt._ca_path = ca
    if config.influx is not None:
        secret_file = config.influx.token_file if config.influx.api == "v2" else config.influx.password_file
        if secret_file is not None:
            key = "influx.token_file" if config.influx.api == "v2" else "influx.password_file"
            config.influx._secret = _read_secret(secret_file, base, key, path)
    tokens = [t.token for t in config.api.tokens]
    if len(set(tokens)) != len(tokens):
        raise ConfigError(f"{path}: api.tokens: two tokens share the same secret")

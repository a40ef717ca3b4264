"""Configuration: farmctl.toml into pydantic models, env overrides, secrets read from files.

Every error names the file and the key in a plain sentence; the CLI turns a ConfigError into exit
code 78 (EX_CONFIG). config_warnings() lists what loads but is probably unwanted.
"""

from controller.config.checks import config_warnings
from controller.config.errors import EX_CONFIG, EX_UNAVAILABLE, ConfigError
from controller.config.load import ENV_PREFIX, load_config
from controller.config.models import (
    ApiConfig,
    Config,
    ControllerConfig,
    FieldMapConfig,
    InfluxConfig,
    JobsConfig,
    MqttConfig,
    PrinterConfig,
    Role,
    SensorConfig,
    SensorKind,
    SensorProfile,
    TokenConfig,
)

__all__ = [
    "ENV_PREFIX",
    "EX_CONFIG",
    "EX_UNAVAILABLE",
    "ApiConfig",
    "Config",
    "ConfigError",
    "ControllerConfig",
    "FieldMapConfig",
    "InfluxConfig",
    "JobsConfig",
    "MqttConfig",
    "PrinterConfig",
    "Role",
    "SensorConfig",
    "SensorKind",
    "SensorProfile",
    "TokenConfig",
    "config_warnings",
    "load_config",
]

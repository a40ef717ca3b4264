"""load_config: TOML into the models, env overrides, secrets read from their files."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from controller.config.errors import ConfigError, describe
from controller.config.models import Config

ENV_PREFIX = "FARMCTL_"


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
        raise ConfigError(describe(exc, Config, raw, path, origins)) from None
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
        key = ""  # spelt as describe() names keys, so an error can say which variable set it
        for part in parts[:-1]:
            if isinstance(target, list):
                match = [t for t in target if isinstance(t, dict) and _env_name(t.get("name", "")) == part]
                if not match:
                    raise ConfigError(f"{path}: env {var}: no entry named {part!r} in {key}")
                target = match[0]
                key += f"[{match[0]['name']!r}]"
            else:
                target = target.setdefault(part, {})
                key = f"{key}.{part}" if key else part
        if not isinstance(target, dict):
            raise ConfigError(f"{path}: env {var}: {key} is not a table")
        target[parts[-1]] = _env_value(value)
        origins[f"{key}.{parts[-1]}"] = var
    return origins


def _env_name(name: object) -> str:
    return str(name).lower().replace("-", "_").replace(".", "_")


def _env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


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
    for member in config.members:
        if member.password_file is not None:
            key = f"members[{member.name!r}].password_file"
            member._password = _read_secret(member.password_file, base, key, path)
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

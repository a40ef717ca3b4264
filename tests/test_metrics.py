"""/metrics as a Prometheus server reads it: every farmctl_ family with its type and labels, values that
follow what the farm did, a viewer token required, and one registry per daemon."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import httpx
import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from controller.api.app import create_app
from controller.config import Config
from controller.fleet.coordinator import Fleet
from controller.jobs.files import FileStore
from controller.jobs.queue import JobQueue
from controller.store import AsyncStore, Store
from tests.farm import TOKENS, running_farm
from tests.helpers import PrinterSpec, closed_port_printers, config_for
from tests.influxql import create_db
from tests.peers.servers import InfluxPeer, MosquittoPeer
from tests.test_telemetry import publish

# Every family /metrics shows with MQTT, InfluxDB and sensors configured: type and label names, as
# dashboards and alerts written against earlier releases expect them.
FAMILIES = {
    "farmctl_mqtt_connected": ("gauge", set()),
    "farmctl_mqtt_messages_received": ("counter", set()),
    "farmctl_mqtt_messages_decoded": ("counter", set()),
    "farmctl_mqtt_messages_rejected": ("counter", {"sensor"}),
    "farmctl_mqtt_messages_unmatched": ("counter", set()),
    "farmctl_mqtt_messages_dropped": ("counter", set()),
    "farmctl_mqtt_broker_messages_dropped": ("counter", set()),
    "farmctl_sensor_points": ("counter", set()),
    "farmctl_points_written": ("counter", set()),
    "farmctl_points_spooled": ("counter", set()),
    "farmctl_points_dropped": ("counter", {"reason"}),
    "farmctl_spool_points": ("gauge", set()),
    "farmctl_spool_bytes": ("gauge", set()),
    "farmctl_printer_state": ("gauge", {"printer", "state"}),
    "farmctl_jobs": ("gauge", {"state"}),
    "farmctl_sensor_readings_refused": ("counter", set()),
    "farmctl_events_dropped": ("counter", {"subscriber"}),
    "farmctl_events_waiting": ("gauge", {"subscriber"}),
    "farmctl_event_streams": ("gauge", set()),
    "farmctl_event_streams_blocked": ("gauge", set()),
    "farmctl_event_streams_pending_bytes": ("gauge", set()),
    "farmctl_event_streams_opened": ("counter", set()),
    "farmctl_event_streams_refused": ("counter", set()),
    "farmctl_event_streams_dropped": ("counter", {"reason"}),
    "farmctl_event_stream_objects_dropped": ("counter", set()),
}
SCALE = "scales/sensor/scale_1/state"


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_show_every_family_with_its_type_labels_and_values(
    mosquitto: MosquittoPeer, influxdb: InfluxPeer, tmp_path: Path
) -> None:
    await create_db(influxdb)
    login = mosquitto.login_toml(tmp_path / "etc")
    sections = (
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\nclient_id = "farmctl-metrics"\n{login}'
        f'[[sensors]]\nid = "scale-1"\ntopic = "{SCALE}"\nprofile = "esphome"\nkind = "weight"\n'
        f'[influx]\napi = "v1"\nurl = "{influxdb.url}"\ndatabase = "farm"\nflush_interval = 0.2\n'
    )
    printers = [PrinterSpec("mk4-1", closed_port_printers(1)[0].url, "k")]
    config = config_for(tmp_path, printers, tokens=TOKENS, sections=sections)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        viewer = farm.as_role("viewer")

        async def scrape() -> str:
            resp = await farm.api.get("/metrics", headers=viewer)
            assert resp.status_code == 200, resp.text
            assert resp.headers["content-type"].startswith("text/plain; version=0.0.4"), resp.headers
            return resp.text

        async with asyncio.timeout(20):  # connected, and mosquitto's own drop count has come in
            while "farmctl_mqtt_broker_messages_dropped_total" not in (text := await scrape()):
                await asyncio.sleep(0.2)
        await publish(mosquitto, [(SCALE, b"1234.5"), (SCALE, b"nan"), ("elsewhere/x", b"1")])
        async with asyncio.timeout(20):
            while _samples(text := await scrape())[("farmctl_points_written_total", frozenset())] < 1:
                await asyncio.sleep(0.2)

        families = {f.name: f for f in text_string_to_metric_families(text)}
        found = {
            name: (f.type, {label for s in f.samples for label in s.labels}) for name, f in families.items()
        }
        assert found == FAMILIES
        samples = _samples(text)

        def value(name: str, **labels: str) -> float:
            return samples[(name, frozenset(labels.items()))]

        assert value("farmctl_mqtt_connected") == 1
        assert value("farmctl_mqtt_messages_received_total") == 2  # the scale's two
        assert value("farmctl_mqtt_messages_rejected_total", sensor="scale-1") == 1
        assert value("farmctl_sensor_points_total") == 1
        states = {dict(k[1])["state"]: v for k, v in samples.items() if k[0] == "farmctl_printer_state"}
        assert states == {
            "offline": 1,
            "idle": 0,
            "printing": 0,
            "paused": 0,
            "error": 0,
            "awaiting_clear": 0,
        }
        assert sum(v for k, v in samples.items() if k[0] == "farmctl_jobs") == 0
        subscribers = {dict(k[1])["subscriber"] for k in samples if k[0] == "farmctl_events_waiting"}
        assert "influx-sink" in subscribers

        for headers in ({"Authorization": ""}, {"Authorization": "Bearer nope"}):
            refused = await farm.api.get("/metrics", headers=headers)
            assert (refused.status_code, set(refused.json())) == (401, {"error"})


@contextlib.asynccontextmanager
async def _app(config: Config) -> AsyncIterator[httpx.AsyncClient]:
    """The API app of `config`, built as the daemon builds it, called in process."""
    store = AsyncStore(Store(config.controller.state_dir / "farmctl.db"))
    try:
        async with aiohttp.ClientSession() as session:
            fleet = Fleet(config.printers, config.controller, session, beds={})
            queue = JobQueue(config, store, FileStore(config.controller.state_dir / "files"), fleet)
            transport = httpx.ASGITransport(app=create_app(config, queue))
            viewer = {"Authorization": f"Bearer {config.api.tokens[0].token}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://farm", headers=viewer
            ) as client:
                yield client
    finally:
        store.close()


async def test_each_app_has_its_own_registry_and_shows_only_farmctl_metrics(tmp_path: Path) -> None:
    one = config_for(tmp_path / "one", [PrinterSpec("one-1", "http://127.0.0.1:9", "k")], tokens=TOKENS)
    two = config_for(tmp_path / "two", [PrinterSpec("two-1", "http://127.0.0.1:9", "k")], tokens=TOKENS)
    async with _app(one) as first, _app(two) as second:
        for client, mine, other in ((first, "one-1", "two-1"), (second, "two-1", "one-1")):
            text = (await client.get("/metrics")).text
            names = {f.name for f in text_string_to_metric_families(text)}
            assert names
            assert all(name.startswith("farmctl_") for name in names), names  # no process_* or python_*
            assert f'printer="{mine}"' in text
            assert f'printer="{other}"' not in text
    # prometheus_client's global registry (what another library in the process may expose) has none.
    assert not [m for m in prometheus_client.REGISTRY.collect() if m.name.startswith("farmctl_")]

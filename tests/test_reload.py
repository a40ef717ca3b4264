"""Config reload on SIGHUP against a daemon process and real OctoPrint virtual printers: an added printer
is watched without the others dropping (a running print goes on), a bad config is refused with the
reason logged and nothing changed, a removed printer is no longer watched (one with a job only once
that job has ended), other sections are logged as needing a restart; new sensors restart the MQTT
ingest (real mosquitto)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.store import Store
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, print_file
from tests.helpers import PrinterSpec, metric_value, write_config
from tests.peers.base import free_port
from tests.peers.servers import MosquittoPeer
from tests.test_crash import Api

REPO = Path(__file__).resolve().parent.parent
FAST = "[jobs]\ndispatch_interval = 0.5\n"


def _until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _printers(api: Api) -> dict[str, dict[str, Any]]:
    resp = api.client.get("/api/v1/printers")
    assert resp.status_code == 200, resp.text
    return {p["name"]: p for p in resp.json()}


def test_sighup_adds_refuses_and_removes_printers(octoprint: OctoPrintFactory, tmp_path: Path) -> None:
    one, two = octoprint(2)
    p1, p2 = PrinterSpec("p1", one.url, one.api_key), PrinterSpec("p2", two.url, two.api_key)
    port = free_port()
    path = write_config(tmp_path, [p1], api_port=port, tokens=TOKENS, sections=FAST)
    store = Store(tmp_path / "state" / "farmctl.db")
    store.set_bed_clear("p1", True)
    store.close()
    log = tmp_path / "daemon.log"
    with log.open("a") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "controller", "run", "--config", str(path)],
            stdout=out,
            stderr=out,
            cwd=REPO,
        )
    api = Api(f"http://127.0.0.1:{port}", (tmp_path / "etc/secrets/ops.token").read_text().strip())

    def logged(text: str) -> bool:
        return text in log.read_text()

    try:
        api.wait_up()
        _until(lambda: _printers(api)["p1"]["state"] == "idle", "p1 idle")
        job_id = api.submit(print_file(tmp_path / "long.gcode", seconds=25))
        api.wait_job(job_id, {"printing"}, 30)

        # Added: p2 is watched, p1 and its print go on.
        write_config(tmp_path, [p1, p2], api_port=port, tokens=TOKENS, sections=FAST)
        seen_before = _printers(api)["p1"]["last_seen"]
        daemon.send_signal(signal.SIGHUP)
        _until(lambda: _printers(api).get("p2", {}).get("state") == "awaiting_clear", "p2 watched")
        api.clear_when_asked("p2")
        assert _printers(api)["p2"]["state"] == "idle"
        _until(lambda: _printers(api)["p1"]["last_seen"] > seen_before, "p1 seen again after the reload")
        assert _printers(api)["p1"]["state"] == "printing"
        assert api.job(job_id)["state"] == "printing"
        assert logged("config reload: printer=p2 added")
        # The utilisation report counts the added printer at once, not after a restart.
        report = api.client.get("/api/v1/reports/utilisation")
        assert report.status_code == 200, report.text
        assert {r["key"] for r in report.json()["rows"]} >= {"p1", "p2"}, report.text

        # A bad config: refused with the key named, nothing changed.
        text = path.read_text()
        head, _, tail = text.rpartition("nozzle = 0.4")
        path.write_text(head + "nozzle = -1" + tail)
        daemon.send_signal(signal.SIGHUP)
        _until(lambda: logged("config reload refused"), "the refusal in the log")
        refusal = next(line for line in log.read_text().splitlines() if "config reload refused" in line)
        assert "printers['p2'].nozzle" in refusal, refusal
        assert sorted(_printers(api)) == ["p1", "p2"]
        assert _printers(api)["p2"]["state"] == "idle"
        assert api.job(job_id)["state"] == "printing"

        # p1 removed while it prints (and [jobs] changed): kept until its job ends, then no longer
        # watched; the [jobs] change waits for a restart.
        write_config(
            tmp_path, [p2], api_port=port, tokens=TOKENS, sections="[jobs]\ndispatch_interval = 0.7\n"
        )
        daemon.send_signal(signal.SIGHUP)
        _until(lambda: logged("kept until that job ends"), "p1 kept for its job")
        assert logged("config reload: [jobs] changed: needs a restart")
        assert "p1" in _printers(api)
        assert api.wait_job(job_id, {"completed", "failed", "cancelled"}, 90)["state"] == "completed"
        _until(lambda: "p1" not in _printers(api), "p1 no longer listed")
        _until(lambda: logged("config reload: printer=p1 no longer watched"), "p1 stopped")
        assert api.client.get("/api/v1/printers/p1").status_code == 404
        other = api.submit(print_file(tmp_path / "next.gcode"))
        assert api.wait_job(other, {"completed"}, 60)["printer"] == "p2"
        lines = log.read_text()
        assert "Traceback" not in lines, lines[-3000:]
    finally:
        api.client.close()
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(10)
    assert daemon.returncode == 0, log.read_text()[-3000:]


PLUG = '[[sensors]]\nid = "plug-1"\ntopic = "tele/plug-1/SENSOR"\nprofile = "tasmota"\n'
METER = (
    '[[sensors]]\nid = "meter"\ntopic = "workshop/meter"\nprofile = "json"\nmeasurement = "power"\n'
    '[[sensors.fields]]\npath = "watts"\nfield = "power_w"\n'
)


def _publish(mosquitto: MosquittoPeer, topic: str, payload: str) -> None:
    broker = ["-h", "127.0.0.1", "-p", str(mosquitto.port)]
    subprocess.run(["mosquitto_pub", *broker, "-q", "1", "-t", topic, "-m", payload], check=True, timeout=10)


def _connected(api: Api) -> bool:
    return metric_value(api.client.get("/metrics").text, "farmctl_mqtt_connected") == 1


def _decoded(api: Api) -> float:
    return metric_value(api.client.get("/metrics").text, "farmctl_mqtt_messages_decoded_total")


def test_sighup_restarts_the_ingest_with_the_new_sensors(mosquitto: MosquittoPeer, tmp_path: Path) -> None:
    port = free_port()
    mqtt = f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\nclient_id = "farmctl-reload"\n'
    path = write_config(tmp_path, [], api_port=port, tokens=TOKENS, sections=mqtt + PLUG)
    log = tmp_path / "daemon.log"
    with log.open("a") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "controller", "run", "--config", str(path)],
            stdout=out,
            stderr=out,
            cwd=REPO,
        )
    api = Api(f"http://127.0.0.1:{port}", (tmp_path / "etc/secrets/viewer.token").read_text().strip())
    plug = json.dumps({"ENERGY": {"Power": 100.0, "Total": 1.5}})
    try:
        api.wait_up()
        _until(
            lambda: metric_value(api.client.get("/metrics").text, "farmctl_mqtt_connected") == 1, "MQTT up"
        )
        _publish(mosquitto, "tele/plug-1/SENSOR", plug)
        _until(lambda: _decoded(api) == 1, "the plug's reading")
        # Not a sensor yet: the ingest does not even subscribe to it.
        _publish(mosquitto, "workshop/meter", '{"watts": 12.5}')
        time.sleep(1)
        assert _decoded(api) == 1

        write_config(tmp_path, [], api_port=port, tokens=TOKENS, sections=mqtt + PLUG + METER)
        daemon.send_signal(signal.SIGHUP)
        _until(lambda: "MQTT ingest restarted with 2 sensors" in log.read_text(), "the ingest restarted")
        _until(
            lambda: metric_value(api.client.get("/metrics").text, "farmctl_mqtt_connected") == 1, "MQTT up"
        )
        _publish(mosquitto, "workshop/meter", '{"watts": 12.5}')
        _publish(mosquitto, "tele/plug-1/SENSOR", plug)
        # The counters go on from where they were: 1 + the meter + the plug.
        _until(lambda: _decoded(api) == 3, "both sensors' readings after the reload", timeout=30)
    finally:
        api.client.close()
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(10)
    assert daemon.returncode == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()

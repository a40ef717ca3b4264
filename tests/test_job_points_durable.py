"""Job points come from the durable job_events table from a stored cursor: a SIGKILL between a job's end
and its point reaching InfluxDB loses nothing, the point arrives after the restart."""

from __future__ import annotations

from pathlib import Path

from controller.config import load_config
from controller.store import Store
from controller.telemetry.farm import JOB_POINTS_CURSOR
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, print_file
from tests.helpers import PrinterSpec, write_config
from tests.influxql import create_db, influxql, wait_rows
from tests.peers.base import free_port
from tests.peers.servers import InfluxPeer
from tests.test_crash import Api, Daemon


def _config(
    tmp_path: Path, peer_url: str, key: str, influx_url: str, flush_interval: float, port: int
) -> Path:
    sections = (
        "[jobs]\ndispatch_interval = 0.5\n"
        f'[influx]\napi = "v1"\nurl = "{influx_url}"\ndatabase = "farm"\n'
        # 600 s: a point waits in the writer's memory; the SIGKILL finds it there.
        f"flush_interval = {flush_interval}\nprinter_interval = 600\nbatch_size = 100000\n"
    )
    printers = [PrinterSpec("p1", peer_url, key)]
    return write_config(tmp_path, printers, tokens=TOKENS, sections=sections, api_port=port)


async def test_a_job_point_held_in_memory_at_a_sigkill_arrives_after_the_restart(
    octoprint: OctoPrintFactory, influxdb: InfluxPeer, tmp_path: Path
) -> None:
    await create_db(influxdb)
    (peer,) = octoprint(1)
    port = free_port()
    path = _config(tmp_path, peer.url, peer.api_key, influxdb.url, flush_interval=600, port=port)
    config = load_config(path, env={})
    store = Store(config.controller.state_dir / "farmctl.db")
    store.set_bed_clear("p1", True)
    store.close()
    api = Api(f"http://{config.api.listen}", (tmp_path / "etc/secrets/ops.token").read_text().strip())
    log = tmp_path / "daemon.log"
    daemon = Daemon(path, log)
    try:
        api.wait_up()
        job_id = api.submit(print_file(tmp_path / "part.gcode", seconds=1))
        api.wait_job(job_id, {"completed"}, 60)
        daemon.kill()  # the completed point is queued for a flush 600 s away: only in memory
        assert await influxql(influxdb, "SELECT * FROM job") == []
        store = Store(config.controller.state_dir / "farmctl.db")
        cursor = store.cursor(JOB_POINTS_CURSOR)
        store.close()
        assert cursor == 0  # nothing was settled, so the stored cursor never moved past it

        path = _config(tmp_path, peer.url, peer.api_key, influxdb.url, flush_interval=0.2, port=port)
        daemon = Daemon(path, log)
        api.wait_up()
        query = f"SELECT * FROM job WHERE job_id = '{job_id}'"  # noqa: S608 - our own integer
        rows = await wait_rows(influxdb, query, 4)
        assert [r["outcome"] for r in rows] == ["queued", "dispatching", "printing", "completed"]
    finally:
        daemon.stop()
        api.client.close()
    store = Store(config.controller.state_dir / "farmctl.db")
    assert store.cursor(JOB_POINTS_CURSOR) == store.last_event_id()  # all settled on the clean stop
    store.close()

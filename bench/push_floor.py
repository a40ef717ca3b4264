"""The floor of any OctoPrint monitor, for bench/fleet.py: a bare aiohttp loop holding a push websocket to
each printer (passive login, auth, farmctl's subscription and throttle, every frame JSON-decoded).

Its own process, importing nothing but aiohttp and the standard library, so its RSS is the bare cost:
    .venv/bin/python bench/push_floor.py SPEC.json   (a list of {"url", "key"}; SIGUSR1 prints frames)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

import aiohttp

# What farmctl sends after auth (devices/octoprint/push.py; the bench checks they still agree).
FLOOR_SUBSCRIBE = {
    "subscribe": {"state": {"logs": False, "messages": False}, "events": True, "plugins": False}
}
FLOOR_THROTTLE = 2
FLOOR_HEARTBEAT_S = 15.0  # farmctl pings at half its 30 s idle timeout


async def _floor_watch(
    session: aiohttp.ClientSession, url: str, key: str, ready: asyncio.Event, frames: list[int]
) -> None:
    headers = {"X-Api-Key": key}

    async def auth() -> dict[str, str]:
        async with session.post(f"{url}/api/login", json={"passive": True}, headers=headers) as resp:
            login = await resp.json()
        return {"auth": f"{login['name']}:{login['session']}"}

    while True:
        with contextlib.suppress(aiohttp.ClientError, ValueError, KeyError, TimeoutError):
            ws_url = url.replace("http", "ws", 1) + "/sockjs/websocket"
            async with session.ws_connect(ws_url, headers=headers, heartbeat=FLOOR_HEARTBEAT_S) as ws:
                await ws.send_json(await auth())
                await ws.send_json(FLOOR_SUBSCRIBE)
                await ws.send_json({"throttle": FLOOR_THROTTLE})
                async for msg in ws:
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        break
                    frame = json.loads(msg.data)
                    frames[0] += 1
                    if "history" in frame:  # the answer to our auth
                        ready.set()
                    elif "reauthRequired" in frame:
                        await ws.send_json(await auth())
        await asyncio.sleep(1.0)


async def floor(spec_path: Path) -> None:
    """Hold a push socket to each printer in the spec until SIGTERM; SIGUSR1 prints the frame count."""
    printers = json.loads(spec_path.read_text())
    loop, stop, frames = asyncio.get_running_loop(), asyncio.Event(), [0]
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(frames[0], flush=True))
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        readies = [asyncio.Event() for _ in printers]
        tasks = [
            asyncio.create_task(_floor_watch(session, p["url"], p["key"], ready, frames))
            for p, ready in zip(printers, readies, strict=True)
        ]
        await asyncio.gather(*(r.wait() for r in readies))
        print("ready", flush=True)
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(floor(Path(sys.argv[1])))

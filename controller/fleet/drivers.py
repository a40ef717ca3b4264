"""How the fleet reaches its printers: the driver for each, and the HTTP session they share."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from controller.config import ControllerConfig, PrinterConfig
from devices.octoprint import OctoPrintClient, OctoPrintDriver
from devices.printer import PrinterDriver

# Builds the driver for one printer; the session is the fleet's shared HTTP session.
DriverFactory = Callable[[PrinterConfig, ControllerConfig, aiohttp.ClientSession], PrinterDriver]


def octoprint_driver(
    printer: PrinterConfig, settings: ControllerConfig, session: aiohttp.ClientSession
) -> PrinterDriver:
    """The default driver: the printer's OctoPrint host."""
    client = OctoPrintClient(printer.url, printer.api_key, timeout=settings.request_timeout, session=session)
    return OctoPrintDriver(client)


def fleet_session() -> aiohttp.ClientSession:
    """One HTTP session for all printers: no total cap (a hung host must not starve the others)."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=8)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

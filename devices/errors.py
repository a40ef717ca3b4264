"""The small error hierarchy every driver raises (printer hosts, the database writers): one root,
DeviceError, and a kind for each way a device can fail. The controller maps the kinds to HTTP codes in
one place (controller/api/errors.py); devices/ never imports the controller."""


class DeviceError(Exception):
    """Base of every error a driver raises on purpose."""


class DeviceUnavailable(DeviceError):
    """The device did not answer: refused, timed out, reset, DNS failure, 5xx."""


class DeviceUnreachable(DeviceUnavailable):
    """No connection could be made: the request certainly never reached the device."""


class DeviceAuthError(DeviceError):
    """The device refused our credentials (OctoPrint answers 403 for a missing or wrong key)."""


class DeviceBusy(DeviceError):
    """The device understood but cannot do it now (HTTP 409: not operational, already printing)."""


class DeviceBadRequest(DeviceError):
    """The device rejected what we sent (HTTP 400/404/415): a bug or bad input, not a transient."""

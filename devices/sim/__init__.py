"""Simulated devices for tests of the controller's decisions (no sockets, nothing runs by itself)."""

from devices.sim.printer import SimPrinter

__all__ = ["SimPrinter"]

"""Drivers for things on the workshop network. No policy lives here."""

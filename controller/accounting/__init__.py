"""Accounting: measured energy, material, cost and CO2 per job; members' usage; utilisation; passports."""

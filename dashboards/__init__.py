"""Grafana dashboards for farmctl, generated from code (dashboards/build.py)."""

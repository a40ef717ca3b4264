"""Telemetry: MQTT sensor ingest, printer and job points, and the spooling InfluxDB writer."""

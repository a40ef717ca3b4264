"""Real servers for the tests, each started on a free loopback port and stopped by its PID."""

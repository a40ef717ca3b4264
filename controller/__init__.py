"""The farmctl controller: config, fleet monitor, API, CLI and daemon wiring."""

"""The printers: their state as the farm sees it (state.py) and one coordinator per printer."""

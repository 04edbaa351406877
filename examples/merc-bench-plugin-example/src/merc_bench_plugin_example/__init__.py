"""An example third-party merc-bench plugin (see ``plugin.py`` for what it registers)."""

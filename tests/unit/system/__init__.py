"""engine.system: files and /proc."""

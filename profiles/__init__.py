"""Example profiles shipped as package data (`nodewall demo` applies redis-host.toml
from here, so the demo works from a wheel install too).  Each one is applied by a test."""

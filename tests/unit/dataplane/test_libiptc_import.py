"""libiptc.load() imports python-iptables without setuptools and with the same
libraries ctypes' own search finds (each iptables apply pays for this import)."""
from __future__ import annotations

import ctypes.util
import json
import subprocess
import sys

_PROBE = """
import json, sys
from nodewall.engine.dataplane.iptables import libiptc
iptc = libiptc.load()
print(json.dumps({"setuptools": "setuptools" in sys.modules,
                  "distutils": sys.modules.get("distutils", 0) is None,
                  "ip4tc": iptc.ip4tc._libiptc._name}))
"""


def _load_in_fresh_interpreter() -> dict:
    res = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         check=True, timeout=60)
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_load_does_not_import_setuptools_and_leaves_distutils_importable():
    out = _load_in_fresh_interpreter()
    assert out["setuptools"] is False
    assert out["distutils"] is False  # the None placeholder is gone after the import


def test_load_finds_the_library_ctypes_finds():
    assert _load_in_fresh_interpreter()["ip4tc"] == ctypes.util.find_library("ip4tc")

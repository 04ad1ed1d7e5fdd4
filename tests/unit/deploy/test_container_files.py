"""deploy/container/Containerfile keeps to .ci/setup's Debian packages: all those
nodewall runs with, none but those (plus the CA bundle), so the image and the
set-up stay in step."""
from __future__ import annotations

import re

from tests.conftest import REPO

# in .ci/setup for the lab, the demo and the tests, or (headers) mounted from the host
NOT_IN_IMAGE = {"redis-server", "redis-tools", "tmux", "netsniff-ng", "zsh",
                "linux-headers-amd64"}
IMAGE_ONLY = {"ca-certificates"}


def _setup_packages() -> set[str]:
    text = (REPO / ".ci" / "setup").read_text()
    found = re.search(r"APT_PKGS=\(([^)]*)\)", text)
    assert found
    return set(found.group(1).split())


def _image_packages() -> set[str]:
    text = (REPO / "deploy" / "container" / "Containerfile").read_text()
    found = re.search(r"apt-get install -y -q --no-install-recommends((?:[^&])*)&&", text)
    assert found
    return set(found.group(1).replace("\\", " ").split())


def test_the_image_has_the_setup_packages_nodewall_runs_with():
    assert _image_packages() - IMAGE_ONLY == _setup_packages() - NOT_IN_IMAGE


def test_the_image_is_bookworm_slim_and_installs_the_wheel():
    text = (REPO / "deploy" / "container" / "Containerfile").read_text()
    assert "ARG BASE=docker.io/library/debian:bookworm-slim" in text
    assert "--no-index --find-links /tmp/nodewall/wheels /tmp/nodewall/nodewall-*.whl" in text

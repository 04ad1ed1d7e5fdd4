"""dataplane/xdp."""

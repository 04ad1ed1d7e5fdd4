"""dataplane/iptables."""

"""nftables dataplane: one `table inet nodewall` holding rules and sets."""

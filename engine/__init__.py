"""nodewall engine: profiles -> desired state -> kernel (iptables raw/mangle/filter,
ipset, XDP).  Never imports textual or rich (tests/unit/test_layering.py enforces it)."""

"""dataplane/ipsets."""

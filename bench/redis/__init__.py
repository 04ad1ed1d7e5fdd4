"""Sections 4 and 5, against the lab's Redis: the untracked fast path (untracked) and
PING latency vs N (latency)."""

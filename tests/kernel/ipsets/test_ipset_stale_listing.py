"""Retiring sets with a listing taken earlier in the transaction (issue 15, item 9): a
killed load's temp set `nw-t-…` is in the listing, the transaction's own load of that
set clears it meanwhile; retiring must not report it as "still in use by rules
nodewall does not own" (which failed the first recovery after a kill -9)."""
from __future__ import annotations

import pytest
from nodewall.engine.dataplane.ipsets import flush as ipset_flush
from nodewall.engine.dataplane.ipsets import observe as ipset_observe
from nodewall.engine.system.netns import run_in_netns

from tests.conftest import in_ns

pytestmark = pytest.mark.kernel


def _retire_with_stale_listing(gone: str, kept: str):
    listing = ipset_observe.observe()
    ipset_observe.run_ipset("destroy", gone)  # what a load does with its leftover
    report = ipset_flush.destroy_unused({kept}, observed=listing)
    return report, sorted(ipset_observe.observe())


def test_a_set_gone_since_the_listing_is_not_in_use(netns_one):
    ns = netns_one
    kept, old = "nw-n4-kept-0a0a0a", "nw-n4-old-0b0b0b"  # names nodewall makes (it owns them)
    for name in ("nw-t-0123456789ab", kept, old):
        in_ns(ns, "ipset", "create", name, "hash:net")
    report, left = run_in_netns(ns, _retire_with_stale_listing, "nw-t-0123456789ab",
                                kept)
    assert report.in_use == ()
    report.raise_if_incomplete()
    assert left == [kept]  # the old set retired, the kept one kept

"""Sections 1 and 2: set-up time vs N (time_vs_n) and the one-line incremental
update (incremental), both timed with the cases of bench.setup.cases."""

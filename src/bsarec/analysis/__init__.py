"""Analyses of trained runs: oversmoothing, the frequency picture, learned beta, metrics by user and item group."""

"""Non-deep clustering algorithms: FINCH, density peaks, k-means, label matching."""

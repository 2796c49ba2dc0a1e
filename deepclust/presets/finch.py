"""FINCH presets: cosine distance (FINCH's recommendation); ``n_clusters`` is passed by the runner
and selects FINCH's ``req_clust`` partition. FINCH has no training budget, so both presets agree.
"""

PRESETS = {
    "paper": {"default": {"metric": "cosine"}},
    "fast": {"default": {"metric": "cosine"}},
}

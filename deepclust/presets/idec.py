"""IDEC presets. ``paper``: the set-up TDEC's authors used for their IDEC numbers (TDEC Appendix B:
AE 500-500-2000-10, batch 256, 500 pre-training epochs, Adam lr 0.01 throughout) with DEC's
update interval 140 and tol 0.001 (20,000 iterations at most): DEC's presets with gamma = 0.1.
``fast``: CPU minutes on 2 cores.

``fast`` changes the same three things as DEC's ``fast`` (``deepclust/presets/dec.py`` says how
each was chosen): pretraining to the reconstruction plateau (``pretrain_tol=0.01``,
``pretrain_patience=10``, ``pretrain_epochs`` a cap), the UMAP + k-means start
(``init="umap"``) and, unlike DEC's, the per-batch target
(``target="batch"``: P from each step's own Q, as ClustPy's IDEC trains). With the reconstruction
term the partition settles under it (USPS: DEC's label-change test fired after 700-840 updates);
on MNIST the stage reached its 5,000-update cap with 0.45 % of the labels still moving. The
whole-set target (DEC's ``fast`` default) was not measured for IDEC.
"""

from deepclust.presets.dec import PRESETS as _DEC

# DEC's presets plus IDEC's weight of the clustering term (IDEC eq. 7: gamma = 0.1), so that the
# two methods always share every other setting
PRESETS = {
    preset: {name: ({"gamma": 0.1, **entry} if name == "default" else dict(entry))
             for name, entry in table.items()}
    for preset, table in _DEC.items()
}
PRESETS["fast"]["default"]["target"] = "batch"  # see above

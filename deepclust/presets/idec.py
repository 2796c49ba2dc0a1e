"""IDEC presets. ``paper``: the set-up TDEC's authors used for their IDEC numbers (TDEC Appendix B:
AE 500-500-2000-10, batch 256, 500 pre-training epochs, Adam lr 0.01 throughout) with DEC's
update interval 140 and tol 0.001 (20,000 iterations at most). ``fast``: CPU minutes on 2 cores.

``fast`` changes the same two things as DEC's ``fast`` (``deepclust/presets/dec.py`` says how
each was chosen): pretraining to the reconstruction plateau (``pretrain_tol=0.01``,
``pretrain_patience=10``, ``pretrain_epochs`` a cap) and the per-batch target (``target="batch"``).
"""

PRESETS = {
    "paper": {
        "default": dict(gamma=0.1, hidden_dims=(500, 500, 2000), latent_dim=10, pretrain_epochs=500,
                        pretrain_lr=0.01, lr=0.01, batch_size=256, max_iter=20000,
                        update_interval=140, tol=0.001, n_init=20,
                        pretrain_tol=None, target="full"),
    },
    "fast": {
        "default": dict(gamma=0.1, hidden_dims=(500, 500, 2000), latent_dim=10, pretrain_epochs=100,
                        pretrain_lr=1e-3, lr=1e-3, batch_size=256, max_iter=3000,
                        update_interval=140, tol=0.001, n_init=10, pretrain_tol=0.01,
                        pretrain_patience=10, target="batch"),
        "digits": dict(pretrain_epochs=300, max_iter=2000, update_interval=40),
        "usps": dict(pretrain_epochs=100, max_iter=3000),
        "mnist-test": dict(pretrain_epochs=100, max_iter=3000),
        "mnist": dict(pretrain_epochs=50, max_iter=5000),
        "fashion-mnist": dict(pretrain_epochs=50, max_iter=5000),
    },
}

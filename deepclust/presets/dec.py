"""DEC presets. ``paper``: the set-up TDEC's authors used for their DEC numbers (TDEC Appendix B:
AE 500-500-2000-10, batch 256, 500 pre-training epochs, Adam lr 0.01 throughout) with DEC's
update interval 140 and tol 0.001 (20,000 iterations at most). ``fast``: CPU minutes on 2 cores.

``fast`` changes two things against the papers' loop, both label-free, each a switch:

* ``pretrain_tol=0.01, pretrain_patience=10``: pretraining ends when ten epochs in a row cut the
  best reconstruction error by less than 1 % (``deepclust.stopping.plateau_reached``), so
  ``pretrain_epochs`` is a cap sized to the CPU budget (300 on Digits' 1,797 images, 100 on
  USPS and MNIST-test, 50 on the 70,000 MNIST images). The earlier fixed 15-40 epochs stopped
  while the reconstruction error still fell by 4-7 % per 10 epochs (USPS, seed 0).
* ``target="batch"``: DEC's target (eq. 3) is computed from each step's own Q, i.e. eq. 3 at the
  current parameters with the frequencies f_j estimated on the mini-batch, instead of a whole-set
  P frozen for ``update_interval`` steps (the reference code's approximation, kept as
  ``target="full"`` and in ``paper``). ClustPy's DEC and IDEC train this way. The label-change
  stop test (tol 0.001 every ``update_interval`` steps) still ends the stage.
"""

PRESETS = {
    "paper": {
        "default": dict(hidden_dims=(500, 500, 2000), latent_dim=10, pretrain_epochs=500,
                        pretrain_lr=0.01, lr=0.01, batch_size=256, max_iter=20000,
                        update_interval=140, tol=0.001, n_init=20,
                        pretrain_tol=None, target="full"),
    },
    "fast": {
        "default": dict(hidden_dims=(500, 500, 2000), latent_dim=10, pretrain_epochs=100,
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

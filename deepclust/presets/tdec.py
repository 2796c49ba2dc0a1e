"""TDEC presets.

``paper``: sec. 4 set-up — encoding layer 512-512-3072-10, Dim-Reduction 10-50-50-100-2,
N1 = 4, N2 = 1, 200 pretraining epochs, 500 epochs, Adam lr 0.01, batch 256, alpha = 0.1,
beta = 0.001, k = 50, dc at 2% (for a GPU). Faithful: L_clu also trains the DR block, and
``track_centers=False``: Algorithm 1 re-runs density peaks at every refresh and numbers the
clusters by the new peaks (decreasing gamma), with no matching to the previous refresh.

``fast``: a CPU budget on 2 shared cores — a 2-block encoder with narrower encoding layers
(256-256-1024), Adam lr 1e-3 (lr 0.01 made the clustering space collapse in our CPU runs: dc fell
to 1e-3 on Digits), batch 64 on the small sets (more steps per epoch), few epochs. Every loss
term, the density-peak head and Algorithm 1 are kept. The follow-up measurements (``benchmarks/
notes_tdec2.md``, chosen by a label-free criterion, see ``docs/methods/tdec.md``):

* ``dr_epochs``: after pretraining, the DR block alone is fitted on L_dim over the fixed clean
  features (finishing Algorithm 1 line 1 over v), about 1,400 mini-batch steps per data set;
* ``perplexity`` about B / 13 (5 at batch 64, 10 at 128, 20 at 256) instead of 30: the Gaussian
  neighbourhood of eq. 11 must stay below one cluster's share of a mini-batch (B / K);
* ``clu_to_dr=False``: L_clu trains the encoder (through the DR map) but not the DR weights,
  which L_dim alone trains — with alpha / beta = 100 the clustering KL otherwise rewrites the DR
  block and L_dim doubles during the clustering stage (a stated deviation from the paper);
* ``track_centers=True``: each refresh's clusters are renumbered to match the previous
  refresh's, so a cluster keeps its number through training (the losses and the stop test do
  not depend on the numbering).
"""

_FAST_NET = dict(depth=2, decoder_depth=1, hidden_dims=(256, 256, 1024), latent_dim=10,
                 dr_dims=(50, 50, 100), cluster_dim=2)

PRESETS = {
    "paper": {
        "default": dict(depth=4, decoder_depth=1, hidden_dims=(512, 512, 3072), latent_dim=10,
                        dr_dims=(50, 50, 100), cluster_dim=2, alpha=0.1, beta=0.001,
                        n_neighbors=50, neighbor_rate=0.02, pretrain_epochs=200, epochs=500,
                        lr=0.01, batch_size=256, update_interval=None, tol=0.001, augment=True,
                        track_centers=False),
    },
    "fast": {
        "default": dict(**_FAST_NET, alpha=0.1, beta=0.001, n_neighbors=50, neighbor_rate=0.02,
                        pretrain_epochs=10, epochs=10, lr=1e-3, batch_size=256,
                        update_interval=None, tol=0.001, augment=True, clu_to_dr=False,
                        perplexity=20.0, dr_epochs=10, track_centers=True),
        "digits": dict(pretrain_epochs=30, epochs=20, batch_size=64, perplexity=5.0,
                       dr_epochs=50),
        "usps": dict(pretrain_epochs=10, epochs=8, batch_size=128, perplexity=10.0,
                     dr_epochs=20),
        "mnist-test": dict(pretrain_epochs=10, epochs=8, batch_size=128, perplexity=10.0,
                           dr_epochs=20),
        "mnist": dict(pretrain_epochs=4, epochs=4, batch_size=256, perplexity=20.0,
                      dr_epochs=5),
        "fashion-mnist": dict(pretrain_epochs=4, epochs=4, batch_size=256, perplexity=20.0,
                              dr_epochs=5),
    },
}

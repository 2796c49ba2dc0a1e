"""SCDSC presets.

``paper`` (the fidelity check): Table 4 and section 4.2 of the paper (400 full-batch epochs,
patch 7x7x8, FINCH on 17x17x8 patches -> PCA 300, level after the 2nd iteration, beta = 1e-3,
beta1 = 3, pretraining 50 / 70 / 150 epochs for Trento / Houston / PaviaU), with every rule we
added switched off: per-feature standardised patches (as the authors' data script), a fixed
number of pretraining epochs, the unit-norm basis term as a penalty only, plain k-means
initialisation, no re-seeding, and the authors' confident-share epoch rule alone. Table 4 and
the text of section 4.2 disagree on the learning rates (the text gives 5e-3 to Houston and
Trento and 1e-4 to PaviaU; Table 4 gives 1e-4 to Houston and 5e-3 to Trento and PaviaU); we
follow Table 4. Any scene the paper does not name: the PaviaU setting (beta2 = 7, 7x7 window,
lr 5e-3) with 100 pretraining epochs.

``fast`` (a CPU budget of minutes on 2 cores, and our recommended setting): every label-free
rule on (class defaults: scale-preserving patch normalisation, pretraining until the
reconstruction error plateaus, unit-norm bases, degenerate k-means restarts rejected, dying
clusters re-seeded, epochs that lost a cluster ranked last) plus up to 3 restarts of a fit that
lost a cluster, 80 joint epochs, pretraining capped at 100 epochs, faiss k-means with 10
restarts. Large scenes (PaviaU, Trento) also bound memory with ``chunk_size`` (same gradient,
per-chunk BatchNorm statistics).

How the defaults for a scene the paper does not name were chosen (one setting for every such
scene, no per-scene tuning, no labels):

* beta2 = 7, lr 5e-3: the paper's setting (Table 4, PaviaU), the same as the ``paper`` preset
  uses for such scenes. At this rate the first joint epochs swing the hard partition, and some
  fits lose a cluster (it must be re-seeded); the remedy is ``restarts``, not a lower rate.
  (lr 1e-3 with beta2 = 1 never needed a re-seed on Salinas-A and was the earlier default; it
  is measured beside the present one in benchmarks/RESULTS.md.)
* restarts = 3: a fit whose joint training had to re-seed a cluster is refitted from a fresh
  seed (:mod:`deepclust.restarts`; at most 3 more fits, the first clean one kept). The signal
  is label-free. On Salinas-A without restarts, 2 of 5 seeds re-seeded (3 and 5 times), and
  scoring afterwards showed that those two were the two poor maps; the rule reads only the
  re-seeds.
* 80 joint epochs: the confident share and the cluster sizes still moved at 30. 80 is the
  budget, not a convergence proof. Label-change stopping rules (``stop_tol``) were measured and
  not adopted: the partition drifts slowly while the map still improves, so a test of fewer
  than 1 % of the pixels moved over 10 epochs (DEC's 0.1 % per update, summed) stopped seed 0
  at epoch 16 with the earlier default (benchmarks/RESULTS.md, SCDSC notes).
* ``init="kmeans"`` (Algorithm 1), not ``"umap"``: UMAP + k-means on the codes starts from a
  near-perfect partition on Salinas-A, but the subspace bases fitted to it do not hold it: on
  seed 0 three fits in a row lost clusters (12, 2 and 4 re-seeds) before the fourth came out
  clean, against one clean fit from k-means (label-free counts; both end at OA 1.000).
"""

_PAPER_COMMON = {
    "beta": 1e-3,
    "beta1": 3.0,
    "epochs": 400,
    "pretrain_lr": 1e-3,
    "pretrain_batch_size": 4096,
    "kmeans_n_init": 30,
    "finch_level": 1,
    # the rules we added, all off: the authors' pipeline
    "patch_scaling": "feature",
    "pretrain_tol": None,
    "basis_norm": "penalty",
    "init": "kmeans",
    "init_repair": False,
    "reseed": False,
    "min_cluster_share": None,
}

PRESETS = {
    "paper": {
        "default": {**_PAPER_COMMON, "beta2": 7.0, "window": 7, "lr": 5e-3, "pretrain_epochs": 100},
        "houston": {"beta2": 8.0, "window": 3, "lr": 1e-4, "pretrain_epochs": 70},
        "trento": {"beta2": 1.0, "window": 7, "lr": 5e-3, "pretrain_epochs": 50},
        "paviau": {"beta2": 7.0, "window": 7, "lr": 5e-3, "pretrain_epochs": 150},
    },
    "fast": {
        "default": {
            "beta": 1e-3,
            "beta1": 3.0,
            "beta2": 7.0,
            "window": 7,
            "lr": 5e-3,
            "epochs": 80,
            "pretrain_lr": 1e-3,
            "pretrain_batch_size": 4096,
            "pretrain_epochs": 100,
            "pretrain_tol": 0.01,
            "pretrain_patience": 10,
            "kmeans_n_init": 10,
            "kmeans_backend": "faiss",
            "finch_level": 1,
            "patch_scaling": "global",
            "basis_norm": "project",
            "init": "kmeans",
            "init_repair": True,
            "reseed": True,
            "min_cluster_share": 0.1,
            "restarts": 3,
        },
        # the paper's named scenes keep Table 4's weights, window and rate
        "houston": {"beta2": 8.0, "window": 3, "lr": 1e-4},
        "trento": {"beta2": 1.0, "window": 7, "lr": 5e-3, "chunk_size": 8192},
        "paviau": {"beta2": 7.0, "window": 7, "lr": 5e-3, "chunk_size": 8192},
        "salinas": {"chunk_size": 8192},
    },
}

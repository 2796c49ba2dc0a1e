"""EDESC presets (MLP autoencoder on vectors; on scenes the pixel spectra).

``paper``: d = 5 basis vectors per subspace, eta = 5, basis terms weighted 1e-3 (as SCDSC's
issue states them), KL weight 0.1, d-500-500-2000-z autoencoder, k-means with 30 restarts.
``fast``: the same model, fewer epochs, smaller latent training budget for 2 CPU cores.
"""

PRESETS = {
    "paper": {
        "default": {
            "n_subspace_dims": 5,
            "eta": 5.0,
            "basis_weight": 1e-3,
            "kl_weight": 0.1,
            "pretrain_epochs": 50,
            "epochs": 100,
            "batch_size": 512,
            "kmeans_n_init": 30,
        },
    },
    "fast": {
        "default": {
            "n_subspace_dims": 5,
            "eta": 5.0,
            "basis_weight": 1e-3,
            "kl_weight": 0.1,
            "pretrain_epochs": 15,
            "epochs": 15,
            "batch_size": 256,
            "kmeans_n_init": 10,
        },
    },
}

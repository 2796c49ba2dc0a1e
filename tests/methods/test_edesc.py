import numpy as np
import torch

from deepclust.cluster.subspace import init_bases
from deepclust.losses.subspace import subspace_affinity
from deepclust.methods.edesc import EDESC


def test_init_bases_recovers_subspaces():
    rng = np.random.default_rng(0)
    lat, d, k = 8, 2, 3
    bases = [np.linalg.qr(rng.normal(size=(lat, d)))[0] for _ in range(k)]
    labels = np.repeat(np.arange(k), 30)
    z = np.concatenate([rng.normal(size=(30, d)) @ B.T for B in bases])
    D = init_bases(z, labels, k, d, rng=rng)
    for j, B in enumerate(bases):
        Dj = D[:, j * d : (j + 1) * d]
        np.testing.assert_allclose(Dj.T @ Dj, np.eye(d), atol=1e-5)
        # same span: projecting B onto span(Dj) leaves it unchanged
        np.testing.assert_allclose(Dj @ (Dj.T @ B), B, atol=1e-5)
    s = subspace_affinity(torch.tensor(z), torch.tensor(D, dtype=torch.float64), n_clusters=k, d=d)
    assert (s.argmax(1).numpy() == labels).mean() > 0.95


def test_init_bases_small_cluster_is_filled():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(10, 6))
    labels = np.array([0] * 9 + [1])
    D = init_bases(z, labels, 3, 2, rng=rng)  # cluster 1 has one code, cluster 2 none
    np.testing.assert_allclose(np.linalg.norm(D, axis=0), 1.0, rtol=1e-5)


def test_edesc_fit_predict_vectors_and_images():
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(0, 0.3, (40, 12)) + c for c in (0, 3, -3)]).astype(np.float32)
    m = EDESC(
        n_clusters=3,
        hidden=(16,),
        latent=6,
        n_subspace_dims=2,
        pretrain_epochs=2,
        epochs=2,
        batch_size=32,
        kmeans_n_init=2,
        random_state=0,
        device="cpu",
    ).fit(X)
    assert m.labels_.shape == (120,) and set(m.labels_) <= {0, 1, 2}
    assert m.predict(X[:5]).shape == (5,)
    assert "train" in m.history_.stages and "pretrain" in m.history_.stages
    imgs = X[:, :12].reshape(120, 1, 3, 4)
    m2 = EDESC(
        n_clusters=3,
        hidden=(16,),
        latent=6,
        n_subspace_dims=2,
        pretrain_epochs=1,
        epochs=1,
        batch_size=32,
        kmeans_n_init=1,
        random_state=0,
        device="cpu",
    ).fit(imgs)
    assert m2.labels_.shape == (120,)

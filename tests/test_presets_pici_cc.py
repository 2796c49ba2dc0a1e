"""The pici and cc presets name only real constructor arguments and valid settings."""

import pytest
from sklearn.base import clone

from deepclust.methods.cc import ContrastiveClustering
from deepclust.methods.pici import PICI
from deepclust.presets import get_preset


@pytest.mark.parametrize("dataset", ["ucmerced", "coil20", "mnist-test", "digits", "usps"])
@pytest.mark.parametrize("preset", ["fast", "paper"])
def test_presets_construct(dataset, preset):
    p = PICI(n_clusters=10, **get_preset("pici", dataset, preset))
    p._check_params()
    assert clone(p).get_params() == p.get_params()
    c = ContrastiveClustering(n_clusters=10, **get_preset("cc", dataset, preset))
    c._check_params()


def test_paper_settings():
    p = get_preset("pici", "ucmerced", "paper")
    assert (p["pretrain_epochs"], p["train_epochs"], p["boost_epochs"]) == (200, 800, 50)
    assert (p["batch_size"], p["lr"], p["mask_ratio"], p["vit_size"]) == (96, 1e-4, 0.5, "small")
    assert (p["decoder_dim"], p["decoder_depth"], p["decoder_heads"]) == (512, 8, 16)

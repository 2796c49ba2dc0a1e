"""Contrastive Clustering presets.

``paper``: Li et al. (AAAI 2021) — ResNet-34, 224 px for ImageNet-size images, instance head to
128, tau_I 0.5, tau_C 1.0, Adam 3e-4, batch 256, 1000 epochs. Meant for a GPU.

``fast``: a CPU budget (2 cores). ResNet-18 layout at width 32 (half the channels), 64 px input
with the ImageNet stem (stride 4), batch 128, 60 epochs: about 25 min on UC Merced on a loaded
2-core machine. Small grey-scale sets use 32 px inputs with the CIFAR stem.
"""

_FAST = {
    "img_size": 64,
    "arch": "resnet18",
    "width": 32,
    "stem": "imagenet",
    "batch_size": 128,
    "epochs": 60,
    "lr": 3e-4,
}

_SMALL_GREY = {"img_size": 32, "width": 16, "stem": "cifar", "batch_size": 128}

PRESETS = {
    "fast": {
        "default": dict(_FAST),
        "ucmerced": {},
        "coil20": {**_SMALL_GREY, "epochs": 60},
        "mnist-test": {**_SMALL_GREY, "epochs": 10, "batch_size": 256},
        "mnist": {**_SMALL_GREY, "epochs": 2, "batch_size": 256},
        "fashion-mnist": {**_SMALL_GREY, "epochs": 2, "batch_size": 256},
        "usps": {"img_size": 16, "width": 16, "stem": "cifar", "epochs": 10, "batch_size": 256},
        "digits": {"img_size": 8, "width": 16, "stem": "cifar", "epochs": 40, "batch_size": 128},
    },
    "paper": {
        "default": {
            "img_size": 224,
            "arch": "resnet34",
            "width": 64,
            "stem": "imagenet",
            "batch_size": 256,
            "epochs": 1000,
            "lr": 3e-4,
        }
    },
}

"""Losses, one module per loss. Import from the module, e.g. ``deepclust.losses.dec``."""

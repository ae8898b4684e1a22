"""pytest set-up shared by unit tests and notebook runs (nbval): the smoke profile, headless, and
the `gpu` marker, whose tests skip on machines without CUDA."""

import os

import pytest

os.environ.setdefault("COURSE_PROFILE", "smoke")
os.environ.setdefault("COURSE_HEADLESS", "1")
os.environ.setdefault("MPLBACKEND", "agg")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

import os

import pytest
import torch

FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(autouse=True, scope="session")
def _threads():
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def fashion_root(tmp_path_factory):
    """A torchvision root for Fashion-MNIST, staged from Debian's package (real data)."""
    if not os.path.isdir(FASHION):
        pytest.fail(f"{FASHION} missing: apt-get install dataset-fashion-mnist (.ci/run does)")
    return str(tmp_path_factory.mktemp("data"))

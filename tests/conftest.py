import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

# Tests never download: point the weights resolver at the shared official checkpoints.
os.environ.setdefault("BENCH_WEIGHTS_DIR", str(SHARED / "weights"))
os.environ.setdefault("BENCH_CACHE_DIR", str(ROOT / ".pytest_cache" / "bench-cache"))
# ... and nothing downloads (the neural codecs' weights folders would otherwise be fetched from the hub)
os.environ.setdefault("BENCH_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: the tests need the shared fixtures and weights beside the checkout")
    return SHARED

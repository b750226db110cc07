"""Shared fixtures: the real CamVid data beside the repo and the shipped model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CAMVID = Path(os.environ.get("CAMVID_DIR", REPO.parent / "shared" / "data" / "camvid"))


@pytest.fixture(scope="session")
def camvid() -> Path:
    if not (CAMVID / "train").is_dir():
        pytest.fail(f"CamVid not found at {CAMVID}: the suite needs ../shared/data/camvid (or CAMVID_DIR)")
    return CAMVID


@pytest.fixture(scope="session")
def tiny_camvid(tmp_path_factory, camvid) -> Path:
    """A few real frames in the CamVid layout, for end-to-end runs that must stay fast."""
    root = tmp_path_factory.mktemp("tiny_camvid")
    for split, n in (("train", 4), ("val", 2)):
        for sub in (split, f"{split}annot"):
            (root / sub).mkdir()
            for f in sorted((camvid / sub).iterdir())[:n]:
                shutil.copy(f, root / sub / f.name)
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """ONNX exports go to one per-session cache, never the user's ~/.cache."""
    monkeypatch.setenv("FCN_PERCEPTION_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))

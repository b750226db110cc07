"""What the node agrees to load and where it agrees to write."""

import os
import stat

import pytest
import torch

from fcn_perception.inference.backends import create_backend, onnx_for
from fcn_perception.inference.model_store import cache_dir, cache_file, default_model_path
from fcn_perception.model.fcn import load_model


def test_a_pickled_full_model_is_refused_not_executed(tmp_path):
    """torch.save(model) pickles code references; loading it with weights_only=False would run them."""
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "model.pt"
    torch.save({"config": {}, "state_dict": {}, "x": Payload()}, evil)
    with pytest.raises(ValueError, match="not a loadable fcn_perception checkpoint"):
        load_model(evil)
    assert not marker.exists()
    full = tmp_path / "full_module.pt"
    torch.save(load_model(default_model_path()), full)  # a whole nn.Module, not a state dict
    with pytest.raises(ValueError, match="not a loadable fcn_perception checkpoint") as refused:
        load_model(full)
    # one line that says why, without torch's advice to load it with weights_only=False
    why = "UnpicklingError: Unsupported global: GLOBAL fcn_perception.model.fcn.FCN was not an allowed global by default"
    assert str(refused.value) == f"{full}: not a loadable fcn_perception checkpoint ({why})"
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(default_model_path().read_bytes()[:4096])
    with pytest.raises(ValueError, match="not a loadable") as refused:
        load_model(truncated)
    assert "\n" not in str(refused.value) and "weights_only" not in str(refused.value)


def test_engine_files_are_not_models_and_foreign_engines_need_trusted_engine(tmp_path):
    engine = tmp_path / "from_elsewhere.engine"
    engine.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="trusted_engine"):
        create_backend("auto", engine)
    with pytest.raises(ValueError, match="needs the tensorrt backend"):  # whether or not TensorRT is installed
        create_backend("onnxruntime", default_model_path(), engine=str(engine))


def test_cache_writes_stay_inside_the_cache_directory(tmp_path):
    root = cache_dir(tmp_path / "cache")
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert cache_file(root, "onnx", "m.onnx").parent == root / "onnx"
    for escape in (("..", "evil.onnx"), ("/etc", "passwd"), ("onnx", "../../evil")):
        with pytest.raises(ValueError, match="outside the cache directory"):
            cache_file(root, *escape)
    (root / "link").symlink_to(tmp_path)  # a symlink planted in the cache pointing out of it
    with pytest.raises(ValueError, match="outside the cache directory"):
        cache_file(root, "link", "evil.onnx")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        cache_dir(tmp_path / "file")


def test_the_cache_dir_parameter_is_where_exports_go(tmp_path):
    out = onnx_for(default_model_path(), 96, 64, cache=tmp_path / "mycache")
    assert out.is_file() and out.is_relative_to((tmp_path / "mycache").resolve())
    assert [p.name for p in tmp_path.iterdir()] == ["mycache"]

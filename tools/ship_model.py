"""Copy a trained checkpoint into the package as the default model and record it in the manifest.

    .venv/bin/python tools/ship_model.py runs/camvid_lite0_fcn8s/best.pt

Only the config and the state dict are kept (optimizer state and logs stay in runs/); the
manifest's SHA-256 is what `resolve_model` checks before loading the shipped file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fcn_perception.export import file_sha256
from fcn_perception.fcn import load_model, save_checkpoint
from fcn_perception.model_store import DEFAULT_MODEL_NAME, MANIFEST, PACKAGE_MODELS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--name", default=DEFAULT_MODEL_NAME)
    args = ap.parse_args()
    payload = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    model = load_model(args.checkpoint)
    out = PACKAGE_MODELS / args.name
    save_checkpoint(out, model, {"val": payload.get("val"), "step": payload.get("step")})
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {"models": {}}
    manifest["models"][args.name] = {
        "sha256": file_sha256(out),
        "bytes": out.stat().st_size,
        "source": Path(args.checkpoint).as_posix(),
        "val_miou": (payload.get("val") or {}).get("miou"),
        "step": payload.get("step"),
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"shipped {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()

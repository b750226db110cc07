"""Ship a trained checkpoint as the package's default model: .pt, its ONNX export with free
height/width, and an INT8 (QDQ) ONNX calibrated on real frames, each recorded in the manifest.

    .venv/bin/python tools/ship_model.py runs/camvid_cityscapes_lite0_fcn8s/best.pt \
        --calib-dir ../shared/data/camvid/train --calib-dir ../shared/data/cityscapes/train/images:2.0

Only the config and the state dict are kept (optimizer state and logs stay in runs/); the
manifest's SHA-256 is what `resolve_model` checks before loading a shipped file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fcn_perception.files import file_sha256
from fcn_perception.inference.model_store import DEFAULT_MODEL, MANIFEST, MODEL_KINDS, PACKAGE_MODELS
from fcn_perception.inference.quantize import quantize_int8
from fcn_perception.model.export import export_onnx
from fcn_perception.model.fcn import model_from, read_checkpoint, save_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--name", default=DEFAULT_MODEL, help="file stem in fcn_perception/models/")
    ap.add_argument("--calib-dir", action="append", required=True, help="folder of real frames, DIR or DIR:ASPECT (width stretch of a squashed copy); repeat")
    ap.add_argument("--calib-frames", type=int, default=100, help="frames per calibration folder")
    args = ap.parse_args()
    try:
        payload = read_checkpoint(args.checkpoint)
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"ship_model: {exc}")
    model = model_from(payload)
    paths = {kind: PACKAGE_MODELS / (args.name + suffix) for kind, suffix in MODEL_KINDS.items()}
    save_checkpoint(paths["pt"], model, {"val": payload.get("val"), "step": payload.get("step")})
    w, h = model.cfg.input_size
    export_onnx(model, paths["onnx"], height=h, width=w, dynamic=True)
    with tempfile.TemporaryDirectory() as tmp:  # one calibration tree over every folder given
        for i, spec in enumerate(args.calib_dir):
            folder, _, aspect = spec.partition(":")
            files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
            step = max(1, len(files) // args.calib_frames)
            (Path(tmp) / str(i)).mkdir()
            for f in files[::step][: args.calib_frames]:
                img = cv2.imread(str(f))
                if aspect:  # frames as the camera saw them, as they will be served
                    img = cv2.resize(img, (round(img.shape[1] * float(aspect)), img.shape[0]), interpolation=cv2.INTER_LINEAR)
                cv2.imwrite(str(Path(tmp) / str(i) / f"{f.stem}.png"), img)
        quantize_int8(paths["onnx"], paths["int8"], tmp, frames=args.calib_frames * len(args.calib_dir))
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {"models": {}}
    manifest["models"] = {k: v for k, v in manifest["models"].items() if not k.startswith(args.name + ".")}
    for kind, path in paths.items():
        manifest["models"][path.name] = {
            "sha256": file_sha256(path),
            "bytes": path.stat().st_size,
            "source": Path(args.checkpoint).as_posix(),
            "kind": kind,
            "selection": payload.get("val"),
            "step": payload.get("step"),
        }
        print(f"shipped {path} ({path.stat().st_size / 1e6:.1f} MB)")
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()

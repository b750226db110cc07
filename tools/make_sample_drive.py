"""Build the bundled sample drive: consecutive CamVid val frames as CompressedImage + CameraInfo (mcap).

    .venv/bin/python tools/make_sample_drive.py ../shared/data/camvid fcn_perception/sample/camvid_0016E5

Frames of sequence 0016E5 are every 2nd frame of 30 Hz video, so stamps are frame_number / 30 s.
A longer or larger drive for benchmarks (the sequence's frames again and again, 30 Hz stamps,
re-encoded at the size asked; the intrinsics scaled with it):

    .venv/bin/python tools/make_sample_drive.py ../shared/data/camvid /tmp/drive900 --frames 900 --size 1280x720 --loop

A labelled lane drive (every frame of a generic-layout split, e.g. camvid_lanes val, in name
order; stamps from the frame numbers in the names), to replay and judge with
``tools/judge_lane_replay.py``:

    .venv/bin/python tools/make_sample_drive.py ../shared/data/camvid_lanes /tmp/lane_drive --images val --frames 0
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2

from fcn_perception.bags.bag_io import BagWriter, camera_info, compressed_image
from fcn_perception.ros.topics import CAMERA_INFO, COMPRESSED

# Approximate pinhole model of the CamVid camera at 480x360 (~55 deg horizontal field of view);
# CamVid publishes no calibration, so ground projections from this bag are indicative only.
FX = FY = 460.0
CX, CY = 240.0, 180.0
FRAME_ID = "camera_front_optical_frame"
TOPIC = "/camera_front/image_raw/compressed"
INFO_TOPIC = "/camera_front/camera_info"
EPOCH_NS = 1_700_000_000 * 1_000_000_000  # a fixed, plausible wall-clock origin


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("camvid")
    ap.add_argument("out")
    ap.add_argument("--frames", type=int, default=40, help="how many (0: all)")
    ap.add_argument("--images", default="", help="SPLIT of a generic-layout dataset (SPLIT/images/*): its frames in name order instead")
    ap.add_argument("--first", default="0016E5_08081.png")
    ap.add_argument("--quality", type=int, default=85)
    ap.add_argument("--size", default="", help="WxH: frames resized to this (default: as recorded, 480x360)")
    ap.add_argument("--loop", action="store_true", help="repeat the sequence to reach --frames, stamps 1/30 s apart")
    args = ap.parse_args()
    if args.images:
        frames = sorted(f for f in (Path(args.camvid) / args.images / "images").iterdir() if f.suffix.lower() in (".png", ".jpg"))
        start = 0
    else:
        frames = sorted((Path(args.camvid) / "val").glob("0016E5_*.png"))
        start = [f.name for f in frames].index(args.first)
    args.frames = args.frames or len(frames) - start
    frames = frames[start:] if args.loop else frames[start : start + args.frames]
    frames = [frames[i % len(frames)] for i in range(args.frames)] if args.loop else frames
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else None
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    with BagWriter(out) as bag:
        for i, f in enumerate(frames):
            stamp = EPOCH_NS + (i if args.loop else int(f.stem.split("_")[1])) * 1_000_000_000 // 30
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            scale = 1.0
            if size:
                scale = size[0] / bgr.shape[1]
                bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
            ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, args.quality])
            assert ok
            bag.write(TOPIC, COMPRESSED, stamp, compressed_image(stamp, FRAME_ID, jpeg.tobytes()))
            h, w = bgr.shape[:2]
            bag.write(INFO_TOPIC, CAMERA_INFO, stamp, camera_info(stamp, FRAME_ID, w, h, FX * scale, FY * scale, CX * scale, CY * scale))
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out}: {len(frames)} frames, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()

"""``fcn-perception segment``: photos and videos to overlays, id and colour masks, and a legend."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fcn_perception.tools.commands.common import camera_args, model_args, segmenter, stated_camera


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("images", nargs="+", help="image files (png, jpg), video files (mp4, avi, mkv, ...) or folders")
    sp.add_argument("--out", default="segment_out")
    camera_args(sp, "", ": with it the overlays also show the drivable area and the lane boundaries on the ground's terms")
    model_args(sp)


VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")


def run(args: argparse.Namespace) -> int:
    """Segment photos (overlay, id mask, colour mask) and videos (an overlay video at the source's rate),
    plus a legend of class names and colours: the quickest look at what the model sees."""
    import cv2

    from fcn_perception.inference.frames import IMAGE_SUFFIXES
    from fcn_perception.scene.video import VideoOut

    inputs: list[Path] = []
    problems = []
    for src in map(Path, args.images):
        if src.is_dir():
            inputs += sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        elif src.is_file():
            inputs.append(src)
        else:
            problems.append(f"{src}: no such file or folder")
    if not inputs and not problems:
        problems.append(f"no images or videos in {', '.join(args.images)}")
    if not inputs:  # nothing to do: say so before making an output folder
        for line in problems:
            print(f"fcn-perception segment: error: {line}", file=sys.stderr)
        return 2
    camera = stated_camera(args)  # refused before the model loads
    seg = segmenter(args)
    draw = Drawing(seg, camera)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    legend = out / "legend.png"
    cv2.imwrite(str(legend), legend_image(seg.classes, seg.palette_bgr))
    for path in inputs:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            cap = cv2.VideoCapture(str(path))
            ok, bgr = cap.read()
            if not ok:
                problems.append(f"{path}: not a video OpenCV can read")
                continue
            video = VideoOut(out / f"{path.stem}_overlay.mp4", cap.get(cv2.CAP_PROP_FPS) or 25.0)
            t0 = time.perf_counter()
            while ok:
                video.write(draw.overlay(bgr)[0])
                ok, bgr = cap.read()
            video.close()
            cap.release()
            print(f"{path.name}: {video.frames} frames -> {video.path} ({(time.perf_counter() - t0) / max(video.frames, 1) * 1e3:.1f} ms per frame)")
            continue
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            problems.append(f"{path}: not an image OpenCV can read")
            continue
        overlay, result = draw.overlay(bgr)
        draw.reset()  # photos are not a sequence: no tracking from one to the next
        cv2.imwrite(str(out / f"{path.stem}_overlay.png"), overlay)
        cv2.imwrite(str(out / f"{path.stem}_mask.png"), result.mask)  # class ids (legend.png names them)
        cv2.imwrite(str(out / f"{path.stem}_mask_color.png"), cv2.LUT(cv2.merge([result.mask] * 3), seg.palette_bgr.reshape(256, 1, 3)))
        print(f"{path.name}: " + " ".join(f"{k} {v:.1f} ms" for k, v in result.timings_ms.items()))
    print(f"legend: {legend}")
    for line in problems:
        print(f"fcn-perception segment: error: {line}", file=sys.stderr)
    return 1 if problems else 0


class Drawing:
    """The overlay of one frame: class colours, and with a stated camera the pipeline's drawing too
    (ego drivable polygon, lane points, lane boundaries: ego-left cyan, ego-right magenta)."""

    def __init__(self, seg, camera: tuple | None) -> None:
        from fcn_perception.scene.pipeline import Pipeline

        self.seg, self.camera = seg, camera
        self.pipeline = Pipeline(seg) if camera is not None else None
        self.state = None

    def reset(self) -> None:
        self.state = None

    def overlay(self, bgr):
        import cv2

        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if self.pipeline is None:
            result = self.seg.segment(rgb)
            return self.seg.overlay(bgr, result.mask), result
        from fcn_perception.scene.pipeline import CameraState

        if self.state is None or self.state.ground.camera.width != rgb.shape[1]:
            self.state = CameraState.stated(rgb.shape[1], rgb.shape[0], *self.camera)
        result = self.pipeline.process_rgb(rgb, self.state)
        return self.pipeline.overlay_bgr(result), result


def legend_image(classes: list[str], palette_bgr, row: int = 28):
    """Class id, colour swatch and name, one row per class."""
    import cv2
    import numpy as np

    img = np.full((row * len(classes) + 8, 260, 3), 255, np.uint8)
    for i, name in enumerate(classes):
        y = 4 + i * row
        cv2.rectangle(img, (8, y + 3), (48, y + row - 3), tuple(int(c) for c in palette_bgr[i]), -1)
        cv2.putText(img, f"{i:>2} {name}", (58, y + row - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return img

"""The backend contract: what every inference backend takes, returns and declares about itself.

Backends import this module and nothing of each other; the registry (``backends``) imports them, so
there is no cycle. Capabilities are declared as class attributes, never probed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import NamedTuple

import numpy as np

from fcn_perception.model.config import ModelConfig

#: An event that whoever loads a backend and has work to do beside it sets here, in the loading
#: thread (the node: its outputs). The load sets it once work beside it no longer slows it down:
#: OpenVINO as its compile starts, which leaves Python's lock and a core free; the other backends at
#: once (``create_backend``). Work beside OpenVINO's Python part (reading the model, the graph
#: surgery) stalled that part: 0.15-0.2 s of a first start (BENCHMARKS.md, 2026-12-07, sixteenth sitting).
LOAD_YIELDS: ContextVar[threading.Event | None] = ContextVar("load_yields", default=None)


def load_yields() -> None:
    """Said by a backend's load from here on (see :data:`LOAD_YIELDS`)."""
    if (event := LOAD_YIELDS.get()) is not None:
        event.set()


#: A backend's input size decided once it has read the model: ``(config, settled)`` -> (w, h). With
#: ``settled`` False the best answer now (the backend prepares its graph for it), True the answer
#: once the wait for it is over (a camera's first frame: ``SegmenterConfig.first_frame``); a backend
#: that compiles per size asks both, so its Python work overlaps the wait.
SizeFor = Callable[[ModelConfig, bool], tuple[int, int]]


class InferenceError(RuntimeError):
    """The backend failed on a frame (driver error, out of memory, a broken session) — as opposed to a
    bad frame. The node counts these apart and applies its ``on_backend_failure`` policy."""


class Inference(NamedTuple):
    """What a backend returns for a batch: (N, H, W) uint8 class ids, and (N, H, W) uint8 confidence
    (the top class's softmax probability, 255 = 1.0) — None from a graph exported without it."""

    mask: np.ndarray
    confidence: np.ndarray | None = None


class Backend:
    """Normalised (N, 3, H, W) float32 in, class ids and confidence out (the argmax and the confidence
    are in the graph, so a GPU backend ships two compact uint8 images to the host).

    Declared by each backend, read by the Segmenter:
    - ``dynamic``: one instance takes every input size;
    - ``resizable``: an instance per size can be made from the same model file;
    - ``device``: the torch device its tensors live on, None for a host runtime; a backend with a
      device implements :meth:`infer_device` (preprocessing and argmax stay there);
    - ``streams``: how many :meth:`infer` calls may run at once, from different threads (each on its
      own request); the Segmenter lets that many frames into the network together;
    - ``rgb_input``: :meth:`infer_rgb` takes the uint8 frames and the runtime normalises them in its
      graph; the Segmenter serves through it (no float copy of the frame on the host);
    - ``reuses_coarse``: :meth:`infer_rgb_reusing` can run a frame on the coarsest class scores (FCN's
      stride 32) of an earlier frame of the same camera, skipping the layers only they need.
    """

    dynamic: bool = False
    resizable: bool = False
    streams: int = 1
    rgb_input: bool = False
    reuses_coarse: bool = False
    name: str
    config: ModelConfig
    device = None

    def infer(self, batch: np.ndarray) -> Inference:
        raise NotImplementedError

    def infer_rgb(self, frames: np.ndarray) -> Inference:
        """(N, H, W, 3) uint8 RGB at the network's size -> as :meth:`infer` gives for them normalised."""
        raise NotImplementedError(f"{self.name} takes normalised float input")

    def infer_rgb_reusing(self, frames: np.ndarray, coarse: np.ndarray | None) -> tuple[Inference, np.ndarray | None]:
        """As :meth:`infer_rgb`, one frame. With ``coarse`` (the stride-32 class scores an earlier call
        returned, at this size) the frame's own are not computed and None is returned beside it;
        without, the frame's own are returned for later frames."""
        raise NotImplementedError(f"{self.name} computes every layer for every frame")

    def infer_device(self, x):
        """(N, 3, H, W) float32 tensor on ``device`` -> (mask, confidence) tensors left there."""
        raise NotImplementedError(f"{self.name} runs on the host")

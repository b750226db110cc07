"""ONNX Runtime on the CPU execution provider: the CPU path where OpenVINO is not installed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fcn_perception.inference.base import Backend, Inference
from fcn_perception.model.config import CONFIDENCE_NAME, MASK_NAME, config_from_metadata


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime-cpu"

    def __init__(self, onnx_path: str | Path, threads: int = 0) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or (os.cpu_count() or 1)
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        self.config = config_from_metadata(self.session.get_modelmeta().custom_metadata_map)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        #: a graph exported with symbolic height/width takes every frame size (per instance)
        self.dynamic = any(not isinstance(d, int) for d in inp.shape[2:])
        has_confidence = CONFIDENCE_NAME in {o.name for o in self.session.get_outputs()}
        self._outputs = [MASK_NAME, CONFIDENCE_NAME] if has_confidence else [MASK_NAME]

    def infer(self, batch: np.ndarray) -> Inference:
        return Inference(*self.session.run(self._outputs, {self.input_name: np.ascontiguousarray(batch, np.float32)}))

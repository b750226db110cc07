"""TensorRT on a CUDA GPU, split by concern: ``versions`` (which TensorRT, and whether it can run),
``graph`` (what TensorRT's ONNX parser accepts, judged without TensorRT), ``plan`` (profile and
precision route per major), ``engine_cache`` (build keys and manifests), ``build`` (the Builder,
calibration, timing cache) and ``runtime`` (the backend). Only ``build`` and ``runtime`` import
TensorRT, and only when they run."""

"""What a network is, without the network: the config saved in every checkpoint and ONNX file.

Kept free of torch, so a runtime that serves an ONNX or TensorRT model never loads PyTorch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from fcn_perception.model.classes import CAMVID_CLASSES

#: Skip strides of each variant, coarse to fine. ``fcn4s`` adds the paper's next step, a stride-4 skip,
#: for thin classes (lane paint is 2-5 px wide at 360 px height: stride-8 scores draw it 2-4x too wide).
VARIANTS = {"fcn32s": (32,), "fcn16s": (32, 16), "fcn8s": (32, 16, 8), "fcn4s": (32, 16, 8, 4)}
#: Tensor names of every exported graph: frames in; logits, the uint8 argmax mask and the uint8
#: confidence (the top class's softmax probability, 255 = 1.0) out. Graphs exported before the
#: confidence output existed still serve masks; their confidence is absent (None).
INPUT_NAME, LOGITS_NAME, MASK_NAME, CONFIDENCE_NAME = "image", "logits", "mask", "confidence"
#: how an exported graph's stride-32 class scores (``FCN.score["32"]``) end their op's name
COARSE_SCORES = "/score.32/Conv"
#: What the export writes, in cached exports' names: a cache filled by an older export (one without
#: the confidence output) is not taken for the current one.
EXPORT_VERSION = 2


@dataclass
class ModelConfig:
    """Everything needed to rebuild a network; saved inside every checkpoint."""

    backbone: str = "efficientnet_lite0"
    variant: str = "fcn8s"
    classes: list[str] = field(default_factory=lambda: list(CAMVID_CLASSES))
    #: ImageNet normalisation of the backbone; the pipeline applies it, so exported graphs take it too.
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    #: (width, height) of training; inference runs at this height and each frame's own aspect
    #: unless a size is forced.
    input_size: tuple[int, int] = (480, 360)
    #: the trunk's block widths where it was pruned (model/backbones.py::EfficientNetLite); empty: its own
    hidden: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {self.variant!r}")
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        self.input_size = tuple(self.input_size)
        self.hidden = tuple(int(w) for w in self.hidden)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def config_from_metadata(meta: dict[str, str]) -> ModelConfig:
    """The inverse of the metadata :func:`export_onnx` writes: everything a runtime needs beside the graph."""
    return ModelConfig(
        backbone=meta.get("backbone", "efficientnet_lite0"),
        variant=meta.get("variant", "fcn8s"),
        classes=json.loads(meta["classes"]),
        mean=tuple(json.loads(meta["mean"])),
        std=tuple(json.loads(meta["std"])),
        input_size=tuple(json.loads(meta["input_size"])),
        hidden=tuple(json.loads(meta.get("hidden", "[]"))),
    )


def metadata_for(cfg: ModelConfig, fixed_size: tuple[int, int] | None) -> dict[str, str]:
    """What :func:`config_from_metadata` reads back; ``fixed_size`` (w, h) of a fixed-shape graph, or
    None for a graph that takes any height and width."""
    return {
        "classes": json.dumps(list(cfg.classes)),
        "mean": json.dumps(list(cfg.mean)),
        "std": json.dumps(list(cfg.std)),
        "input_size": json.dumps(list(fixed_size or cfg.input_size)),
        "backbone": cfg.backbone,
        "variant": cfg.variant,
        "dynamic": json.dumps(fixed_size is None),
        **({"hidden": json.dumps(list(cfg.hidden))} if cfg.hidden else {}),
    }


def read_onnx_config(path: str | Path) -> ModelConfig:
    """Config of an exported model from its metadata alone (no inference session built)."""
    import onnx

    return proto_config(onnx.load(str(path), load_external_data=False))


def proto_config(proto) -> ModelConfig:
    """Config of an exported model held as an ``onnx.ModelProto``, from its metadata."""
    return config_from_metadata({p.key: p.value for p in proto.metadata_props})


def onnx_constants(proto) -> dict:
    """Initializers and Constant node values (``onnx.TensorProto``) by name: weights, zero points and
    a Slice's starts may be either."""
    values = {i.name: i for i in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = attr.t
    return values


def route_mask_through_float(proto) -> int:
    """Make the graph's ArgMax -> uint8 mask go through float32, as the export writes it.

    ONNX tools that fold cast chains (ONNX Runtime's quantisation pre-processing) turn
    ArgMax -> Cast(FLOAT) -> Cast(UINT8) into one INT64 -> UINT8 Cast, which TensorRT refuses
    (it casts to UINT8 only from FLOAT/HALF). Returns how many casts were split (0: already fine).
    """
    import onnx

    producers = {o: n for n in proto.graph.node for o in n.output}
    fixed = 0
    for node in list(proto.graph.node):
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        src = producers.get(node.input[0]) if node.input else None
        if node.op_type == "Cast" and to == onnx.TensorProto.UINT8 and src is not None and src.op_type == "ArgMax":
            mid = f"{node.input[0]}_as_float"
            cast = onnx.helper.make_node("Cast", [node.input[0]], [mid], name=f"{node.name or 'mask'}_to_float", to=onnx.TensorProto.FLOAT)
            node.input[0] = mid
            proto.graph.node.insert(list(proto.graph.node).index(node), cast)
            fixed += 1
    return fixed

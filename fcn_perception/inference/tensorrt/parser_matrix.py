"""The part of onnx-tensorrt's operator support matrix this package's graphs touch, as a table.

Source: onnx/onnx-tensorrt ``docs/operators.md`` (the TensorRT 8.5 matrix, opset 17, commit
6d0ab7be; the ops below are unchanged in the 10.x and 11.x parsers this package is written for), and
for Q/DQ the parser's own error on anything else: "only activation types allowed as input to this
layer" (onnx-tensorrt #850, onnxruntime #14229). TensorRT 10 and 11 also dequantize FP8 and INT4;
this package makes INT8 only, so the table allows INT8 only — stricter than the parser, never looser.
An op missing here is refused: add it with its row from the matrix when a graph needs it.
"""

from __future__ import annotations

#: op -> the data types TensorRT supports for it (the matrix's "Supported Types" column)
OPS: dict[str, tuple[str, ...]] = {
    "Add": ("FP32", "FP16", "INT32"),
    "ArgMax": ("FP32", "FP16"),
    "AveragePool": ("FP32", "FP16", "INT8", "INT32"),
    "BatchNormalization": ("FP32", "FP16"),
    "Cast": ("FP32", "FP16", "INT32", "INT8", "BOOL"),
    "Clip": ("FP32", "FP16", "INT8"),
    "Concat": ("FP32", "FP16", "INT32", "INT8", "BOOL"),
    "Constant": ("FP32", "FP16", "INT32", "INT8", "BOOL"),
    "ConstantOfShape": ("FP32",),
    "Conv": ("FP32", "FP16", "INT8"),
    "ConvTranspose": ("FP32", "FP16", "INT8"),
    "DequantizeLinear": ("INT8",),
    "Div": ("FP32", "FP16", "INT32"),
    "Exp": ("FP32", "FP16"),
    "Floor": ("FP32", "FP16"),
    "Gather": ("FP32", "FP16", "INT8", "INT32", "BOOL"),
    "GlobalAveragePool": ("FP32", "FP16", "INT8"),
    "Greater": ("FP32", "FP16", "INT32"),
    "HardSigmoid": ("FP32", "FP16", "INT8"),
    "HardSwish": ("FP32", "FP16", "INT8"),
    "Identity": ("FP32", "FP16", "INT32", "INT8", "BOOL"),
    "Max": ("FP32", "FP16", "INT32"),
    "MaxPool": ("FP32", "FP16", "INT8"),
    "Mul": ("FP32", "FP16", "INT32"),
    "Pad": ("FP32", "FP16", "INT8", "INT32"),
    "QuantizeLinear": ("FP32", "FP16"),
    "Reciprocal": ("FP32", "FP16"),
    "ReduceMax": ("FP32", "FP16"),
    "Relu": ("FP32", "FP16", "INT8"),
    "Reshape": ("FP32", "FP16", "INT32", "INT8", "BOOL"),
    "Resize": ("FP32", "FP16"),
    "Shape": ("FP32", "FP16", "INT32", "INT8", "BOOL"),
    "Sigmoid": ("FP32", "FP16", "INT8"),
    "Slice": ("FP32", "FP16", "INT32", "INT8", "BOOL"),
    "Softmax": ("FP32", "FP16"),
    "Squeeze": ("FP32", "FP16", "INT32", "INT8", "BOOL"),
    "Sub": ("FP32", "FP16", "INT32"),
    "Transpose": ("FP32", "FP16", "INT32", "INT8", "BOOL"),
    "Unsqueeze": ("FP32", "FP16", "INT32", "INT8", "BOOL"),
    "Where": ("FP32", "FP16", "INT32", "BOOL"),
}
#: Q/DQ restrictions from the matrix: ``x_zero_point`` / ``y_zero_point`` must be 0
QDQ_ZERO_POINT = 0

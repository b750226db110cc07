"""The FCN's stride-32 path behind a switch in OpenVINO's graph: computed, or taken from an earlier
frame (inference/coarse_reuse.py says when and what it costs).

Why one graph with an ``If`` and not two compiled graphs: a second compiled model keeps its own
activation memory for every stream, and the layers both share run at 640x360: the node grew by 60
MB of RSS and six threads for it. Inside one graph the switch costs nothing measurable.

The cut is taken where the stride-32 path leaves the rest: the tensors that only its layers read.
In the INT8 graph that is an 8-bit tensor (the output of a ``QuantizeLinear``), so the first
convolution past the cut keeps its INT8 kernel; cut after the dequantisation it ran in float, and
the scores moved by up to 0.8.
"""

from __future__ import annotations

import numpy as np

from fcn_perception.model.config import COARSE_SCORES

FINER_SCORES = "/score.16/Conv"  # the stride-16 scores: what the stride-32 path does not feed


def _named(ops, end: str):
    return next((op for op in ops if op.get_friendly_name().endswith(end)), None)


def _ancestors(output) -> set[str]:
    seen, stack = set(), [output.get_node()]
    while stack:
        node = stack.pop()
        if node.get_name() not in seen:
            seen.add(node.get_name())
            stack.extend(i.get_source_output().get_node() for i in node.inputs())
    return seen


def _quantized(output):
    """A dequantised tensor's 8-bit source (Convert -> Subtract -> Multiply undone); others as they are."""
    import openvino as ov

    while output.get_element_type() not in (ov.Type.u8, ov.Type.i8):
        node = output.get_node()
        if node.get_type_name() not in ("Multiply", "Subtract", "Convert"):
            return output
        output = node.input_value(0)
    return output


def _cut(ops, coarse, finer):
    """The one tensor the stride-32 path reads from the rest of the graph (``ops``), or None."""
    only = _ancestors(coarse.output(0)) - _ancestors(finer.output(0))
    cuts = {}
    for op in ops:
        if op.get_name() in only:
            for i in op.inputs():
                source = i.get_source_output()
                if source.get_node().get_name() not in only and source.get_node().get_type_name() != "Constant":
                    cuts[(source.get_node().get_name(), source.get_index())] = source
    return _quantized(next(iter(cuts.values()))) if len(cuts) == 1 else None


def _same_in(ops, output):
    """``output`` of another graph, in the clone whose ``ops`` are given: found by its node's friendly
    name, which cloning keeps; None where that name is not unique there."""
    name = output.get_node().get_friendly_name()
    found = [op for op in ops if op.get_friendly_name() == name]
    return found[0].output(output.get_index()) if len(found) == 1 else None


def clockwork(scores_model):
    """From a graph ``image -> class scores at 1/F``: the graph ``(image, coarse, reuse) -> (scores,
    coarse)``, where ``reuse`` (a boolean) takes the given stride-32 scores instead of computing them,
    and ``coarse`` out is the ones used. None where the graph has no stride-32 scores to cut at.

    The cut is found once, on the graph, and taken in its clone by name: every walk over the graph's
    2,500 operations is a few thousand calls into OpenVINO, and the surgery is paid at every start."""
    import openvino as ov

    ops = scores_model.get_ops()
    coarse_op, finer_op = _named(ops, COARSE_SCORES), _named(ops, FINER_SCORES)
    cut = None if coarse_op is None or finer_op is None else _cut(ops, coarse_op, finer_op)
    if cut is None:
        return None
    body = scores_model.clone()  # the else branch: the stride-32 path alone
    body_ops = body.get_ops()
    body_cut = _same_in(body_ops, cut)
    if body_cut is None:
        return None
    deep_in = ov.opset13.parameter(body_cut.get_partial_shape(), body_cut.get_element_type(), name="deep_in")
    body_cut.replace(deep_in.output(0))
    compute = ov.Model([_named(body_ops, COARSE_SCORES).output(0)], [deep_in], "coarse_scores")
    coarse = coarse_op.output(0)
    given = ov.opset13.parameter(coarse.get_partial_shape(), coarse.get_element_type(), name="given")
    take = ov.Model([given.output(0)], [given], "given_coarse")
    coarse_in = ov.opset13.parameter(coarse.get_partial_shape(), coarse.get_element_type(), name="coarse")
    reuse = ov.opset13.parameter([], ov.Type.boolean, name="reuse")
    switch = ov.opset8.if_op(reuse.output(0))
    switch.set_then_body(take)
    switch.set_else_body(compute)
    switch.set_input(coarse_in.output(0), given, None)
    switch.set_input(cut, None, deep_in)
    used = switch.set_output(take.get_results()[0], compute.get_results()[0])
    coarse.replace(used)
    scores = scores_model.get_results()[0].input_value(0)
    return ov.Model([scores, used], [*scores_model.get_parameters(), coarse_in, reuse], "clockwork")


def no_coarse(compiled) -> dict:
    """The inputs beside the frame that make the graph compute its own stride-32 scores."""
    return {1: np.zeros(compiled.input(1).get_shape(), np.float32), 2: np.array(False)}

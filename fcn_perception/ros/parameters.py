"""The parameter table as ROS parameters: declarations with descriptors (description, read-only,
range, choices), the values read back, the model's class names and colours as read-only parameters."""

from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from fcn_perception.inference.segmenter import Segmenter
from fcn_perception.params.node_config import NodeConfig
from fcn_perception.params.table import PARAMS, ParamSpec, check_known

#: parameters rclpy or this node declares besides the table's (a YAML may set the first two)
ROS_OWN_PARAMS = ("use_sim_time", "start_type_description_service", "classes", "class_colors")


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.choices:
        d.additional_constraints = f"one of {list(spec.choices)}"
    if spec.min is not None and spec.type == "double":
        d.floating_point_range = [FloatingPointRange(from_value=float(spec.min), to_value=float(spec.max), step=0.0)]
    elif spec.min is not None and spec.type == "int":
        d.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=1)]
    return d


def _value(node: Node, name: str):
    try:
        return node.get_parameter(name).value
    except ParameterUninitializedException:  # declared by type only (camera_pose) and not set
        return None


def declare_all(node: Node, overrides: dict) -> NodeConfig:
    """Declare every parameter of the table and return the validated config. An unknown name in the
    YAML (a typo such as overlay_alfa) is refused as replay refuses it: a ValueError, one line."""
    by_type = {"double[]": Parameter.Type.DOUBLE_ARRAY, "string[]": Parameter.Type.STRING_ARRAY}
    for spec in PARAMS:
        unset = spec.type in by_type and not spec.default  # an empty array is declared by type: "not set"
        node.declare_parameter(spec.name, by_type[spec.type] if unset else spec.default, descriptor(spec))
    check_known({n: None for n in overrides if n not in ROS_OWN_PARAMS and not n.startswith("qos_overrides.")})
    return NodeConfig.from_dict({p.name: _value(node, p.name) for p in PARAMS})


def declare_labels(node: Node, seg: Segmenter) -> None:
    """The model's class names and colours as read-only parameters: a consumer names mask ids without
    MODEL.md. Declared again at each configure (the model may have changed)."""
    colours = [f"#{r:02x}{g:02x}{b:02x}" for b, g, r in seg.palette_bgr[: len(seg.classes)]]
    for name, value, what in (
        ("classes", list(seg.classes), "Class names of the model, index = mask id."),
        ("class_colors", colours, "Overlay colour of each class (#rrggbb), index = mask id."),
    ):
        if node.has_parameter(name):
            node.undeclare_parameter(name)
        node.declare_parameter(name, value, ParameterDescriptor(description=what, read_only=True), ignore_override=True)

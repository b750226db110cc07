"""ROS messages as `rosbags` dataclasses and their CDR bytes: what replay writes into bags and what
the node publishes (rclpy's ``Publisher.publish`` takes serialized bytes), from the one set of
builders in ``messages.py``.

Why not rclpy's message classes in the node: they check and convert every field in Python — a
1280x720 mask becomes an ``array.array`` and is copied again into C at publish, 1.9 ms a frame,
where a rosbags ``Image`` keeps the numpy array and serializes it in 0.04 ms; the lane Paths'
hundreds of poses cost three times rosbags' (BENCHMARKS.md, 2026-12-06). The bytes on the wire
are the same CDR either way; subscribers see ordinary messages.
"""

from __future__ import annotations

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_typestore

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)

_NUMPY = {"bool": np.bool_, "byte": np.uint8, "char": np.uint8, "float32": np.float32, "float64": np.float64}
_NUMPY.update({t: np.dtype(t).type for t in ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")})


def _default(node: tuple):
    kind, detail = node
    if kind == Nodetype.BASE:
        name = detail[0]
        return "" if name == "string" else False if name == "bool" else 0.0 if name.startswith("float") else 0
    if kind == Nodetype.NAME:
        return rosbags_message(detail)
    (sub_kind, sub), length = detail  # ARRAY (fixed length) or SEQUENCE (length 0 = empty)
    if sub_kind == Nodetype.BASE and sub[0] in _NUMPY:
        return np.zeros(length if kind == Nodetype.ARRAY else 0, _NUMPY[sub[0]])
    return [_default((sub_kind, sub)) for _ in range(length if kind == Nodetype.ARRAY else 0)]


_TYPES: dict[str, tuple] = {}  # msgtype -> (class, field definitions), looked up once


def rosbags_message(msgtype: str, **fields):
    """A rosbags message with every field not given set to its ROS default, like rclpy's constructors
    (the ``new`` factory of ``messages.py``'s builders). A message given in full (a Path's poses, a
    polygon's points: hundreds a frame) goes straight to its constructor."""
    cls, defs = _TYPES.get(msgtype) or _TYPES.setdefault(msgtype, (TYPESTORE.types[msgtype], TYPESTORE.fielddefs[msgtype][1]))
    if len(fields) < len(defs):
        for name, node in defs:
            if name not in fields:
                fields[name] = _default(node)
    return cls(**fields)


def header(stamp_ns: int, frame_id: str):
    """A std_msgs/Header at ``stamp_ns``."""
    T = TYPESTORE.types
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id)


def as_header(h):
    """Any std_msgs/Header (an rclpy message's, a recording's) as a rosbags one: the same stamp and frame_id."""
    return header(int(h.stamp.sec) * 1_000_000_000 + int(h.stamp.nanosec), str(h.frame_id))


def serialize(msg, msgtype: str) -> bytes:
    """CDR bytes (little endian, with the encapsulation header) as rmw publishes and rosbag2 stores them."""
    return bytes(TYPESTORE.serialize_cdr(msg, msgtype))

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

import struct
from dataclasses import dataclass
from functools import cache

import numpy as np
from rosbags.interfaces import Nodetype


@cache
def typestore():
    """Jazzy's message types as rosbags makes them, made on first use: rosbags builds each ROS 2
    release's store from the one before, and importing them all took 0.2 s. At module level that was
    a fifth of the node's imports before its model could start loading; the node makes the store while
    OpenVINO compiles, off the start's path (ros/node.py, ``on_configure``)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


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
    cls, defs = _TYPES.get(msgtype) or _TYPES.setdefault(msgtype, (typestore().types[msgtype], typestore().fielddefs[msgtype][1]))
    if len(fields) < len(defs):
        for name, node in defs:
            if name not in fields:
                fields[name] = _default(node)
    return cls(**fields)


def header(stamp_ns: int, frame_id: str):
    """A std_msgs/Header at ``stamp_ns``."""
    T = typestore().types
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id)


def as_header(h):
    """Any std_msgs/Header (an rclpy message's, a recording's) as a rosbags one: the same stamp and frame_id."""
    return header(int(h.stamp.sec) * 1_000_000_000 + int(h.stamp.nanosec), str(h.frame_id))


def to_cdr(msg, msgtype: str) -> bytes | memoryview:
    """CDR (little endian, with the encapsulation header) as rosbag2 stores it, without a copy: a
    :class:`Cdr` is already that, rosbags serializes anything else into a buffer of its own."""
    return msg.data if isinstance(msg, Cdr) else typestore().serialize_cdr(msg, msgtype)


def serialize(msg, msgtype: str) -> bytes:
    """:func:`to_cdr` as ``bytes``, the only form rclpy's ``Publisher.publish`` takes (a ``Cdr``'s
    bytes are passed on, not copied)."""
    return bytes(to_cdr(msg, msgtype))


@dataclass(frozen=True)
class Cdr:
    """A message built straight into its CDR bytes, which :func:`serialize` passes on as they are."""

    msgtype: str
    data: bytes

    @property
    def message(self):
        """The rosbags message these bytes hold, for a reader of its fields (tests, tools)."""
        return typestore().deserialize_cdr(self.data, self.msgtype)


_LITTLE_ENDIAN_CDR = b"\x00\x01\x00\x00"  # the encapsulation header rmw writes


def path_cdr(header, poses: np.ndarray | None) -> Cdr:
    """A nav_msgs/Path on the ground, every pose stamped with ``header``: ``poses`` (N, 4) x, y and the
    orientation's z, w (z = 0, a yaw only); None: the empty Path.

    Why not rosbags: it needs four dataclasses a pose and serializes them field by field; the three
    Paths of a 1280x720 sample frame took 0.51 ms that way and 0.13 ms this way (BENCHMARKS.md,
    2026-12-07, twelfth sitting). Every pose is one record of the same layout, written for all at
    once; the bytes are rosbags' (``test_outputs.py`` compares them). Alignment counts from after the
    encapsulation header: each header is 4-aligned, each Pose's doubles 8-aligned."""
    name = str(header.frame_id).encode() + b"\x00"
    stamped = struct.pack("<iII", int(header.stamp.sec), int(header.stamp.nanosec), len(name)) + name
    n = 0 if poses is None else len(poses)
    body = stamped + bytes(-len(stamped) % 4) + struct.pack("<I", n)
    if n == 0:
        return Cdr("nav_msgs/msg/Path", _LITTLE_ENDIAN_CDR + body)
    values = np.zeros((n, 7), "<f8")  # position x, y, z; orientation x, y, z, w
    values[:, :2], values[:, 5:] = poses[:, :2], poses[:, 2:4]
    first = stamped + bytes(-(len(body) + len(stamped)) % 8)  # the first pose starts where the count ends
    later = stamped + bytes(-len(stamped) % 8)  # the others after a double: 8-aligned
    records = np.empty((n - 1, len(later) + 56), np.uint8)
    records[:, : len(later)] = np.frombuffer(later, np.uint8)
    records[:, len(later) :] = values[1:].view(np.uint8).reshape(n - 1, 56)
    return Cdr("nav_msgs/msg/Path", b"".join((_LITTLE_ENDIAN_CDR, body, first, values[0].tobytes(), records.tobytes())))

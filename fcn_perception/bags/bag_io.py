"""rosbag2 reading and writing with `rosbags` (sqlite3 and mcap) — no ROS installation needed."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import CompressionFormat, CompressionMode, Reader, StoragePlugin, Writer

from fcn_perception.ros.cdr import header, to_cdr, typestore
from fcn_perception.ros.topics import CAMERA_INFO, COMPRESSED, IMAGE


@dataclass
class BagMessage:
    topic: str
    msgtype: str
    timestamp: int  # receive/record time in ns, as stored in the bag
    msg: object  # rosbags dataclass (duck-types like the rclpy message)


def bag_topics(path: str | Path) -> dict[str, str]:
    with Reader(path) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


def read_messages(path: str | Path, topics: list[str] | None = None) -> Iterator[BagMessage]:
    """Messages in recorded order; types the typestore does not know are skipped, not fatal."""
    with Reader(path) as reader:
        conns = [c for c in reader.connections if (not topics or c.topic in topics) and c.msgtype in typestore().types]
        for conn, timestamp, raw in reader.messages(connections=conns):
            yield BagMessage(conn.topic, conn.msgtype, timestamp, typestore().deserialize_cdr(raw, conn.msgtype))


def count_messages(path: str | Path) -> dict[str, int]:
    with Reader(path) as reader:
        return {c.topic: c.msgcount for c in reader.connections}


def type_hash(msgtype: str, msgdef: str) -> str:
    """RIHS01 hash of a type known only by its recorded definition (with its ``MSG:`` dependencies)."""
    import copy
    import hashlib

    from rosbags.typesys import get_types_from_msg

    try:
        store = copy.deepcopy(typestore())
        sections = msgdef.split("\n" + "=" * 80 + "\n")
        types = get_types_from_msg(sections[0], msgtype)
        for section in sections[1:]:
            head, _, body = section.partition("\n")
            types.update(get_types_from_msg(body, head.removeprefix("MSG: ").strip()))
        store.register(types)
        return store.hash_rihs01(msgtype)
    except Exception:  # an unparsable definition: a stable stand-in (the hash is metadata, not used to decode)
        return "RIHS01_" + hashlib.sha256(f"{msgtype}\n{msgdef}".encode()).hexdigest()


class BagWriter:
    """A rosbag2 writer that appears at ``path`` only when closed successfully (no half-written bags)."""

    def __init__(self, path: str | Path, storage: str = "mcap", compress: bool = False) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"output bag already exists: {self.path}")
        if storage not in ("mcap", "sqlite3"):
            raise ValueError(f"storage must be mcap or sqlite3, got {storage!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmpdir = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}."))
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self._tmpdir / self.path.name, version=9, storage_plugin=plugin)
        if compress and storage == "mcap":  # zstd chunks: every mcap reader decodes them; grids shrink ~50x
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._conns: dict[str, object] = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def write(self, topic: str, msgtype: str, timestamp: int, msg: object) -> None:
        self.write_raw(topic, msgtype, timestamp, to_cdr(msg, msgtype))

    def write_raw(self, topic: str, msgtype: str, timestamp: int, cdr: bytes | memoryview, msgdef: str = "", rihs01: str = "") -> None:
        """Already-serialized CDR bytes, as received by rclpy with ``raw=True`` or read from a bag. A type
        the typestore does not know keeps the recording's own definition (``msgdef``, ``rihs01``)."""
        conn = self._conns.get(topic)
        if conn is None:
            if msgtype in typestore().types:
                conn = self._writer.add_connection(topic, msgtype, typestore=typestore())
            else:
                conn = self._writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=rihs01 or type_hash(msgtype, msgdef))
            self._conns[topic] = conn
        self._writer.write(conn, timestamp, cdr)
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._writer.close()
            if exc_type is None:
                (self._tmpdir / self.path.name).rename(self.path)
        finally:
            shutil.rmtree(self._tmpdir, ignore_errors=True)


def compressed_image(stamp: int, frame_id: str, jpeg: bytes, fmt: str = "jpeg"):
    return typestore().types[COMPRESSED](header=header(stamp, frame_id), format=fmt, data=np.frombuffer(jpeg, np.uint8))


def raw_image(stamp: int, frame_id: str, array: np.ndarray, encoding: str):
    h, w = array.shape[:2]
    return typestore().types[IMAGE](
        header=header(stamp, frame_id),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=array.strides[0],
        data=np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8),
    )


def camera_info(stamp: int, frame_id: str, width: int, height: int, fx: float, fy: float, cx: float, cy: float, d: list[float] | None = None):
    T = typestore().types
    k = np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], np.float64)
    p = np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], np.float64)
    return T[CAMERA_INFO](
        header=header(stamp, frame_id),
        height=height,
        width=width,
        distortion_model="plumb_bob",
        d=np.array(d or [0.0] * 5, np.float64),
        k=k,
        r=np.eye(3).ravel(),
        p=p,
        binning_x=0,
        binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )

"""Live rosbag tools over real DDS: a player (like ``ros2 bag play``) and a recorder of the node's outputs.

Messages travel as the bag's own CDR bytes (rclpy publishes and receives them serialized), so the
node sees byte-for-byte what a camera driver or ``ros2 bag play`` would send.
"""

from __future__ import annotations

import time
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader
from tqdm import tqdm

from fcn_perception.bags.bag_io import BagWriter
from fcn_perception.ros.messages import msg_class
from fcn_perception.waiting import wait_until


class BagPlayer:
    """Publish a bag's messages at the recorded pace times ``rate`` (0 = as fast as possible)."""

    def __init__(self, node: Node, bag: str | Path, topics: list[str] | None = None, rate: float = 1.0) -> None:
        self.node, self.bag, self.rate = node, Path(bag), rate
        with Reader(self.bag) as reader:
            self.connections = {c.topic: c.msgtype for c in reader.connections if not topics or c.topic in topics}
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.publishers = {t: node.create_publisher(msg_class(m), t, qos) for t, m in self.connections.items()}
        self.sent: dict[str, list[int]] = {t: [] for t in self.connections}  # wall-clock ns of each publish

    def wait_for_subscriber(self, topics: list[str], node_name: str, timeout: float = 20.0, alive=lambda: True) -> bool:
        """Block until ``node_name`` subscribes to every topic (False on timeout or when ``alive()`` fails)."""

        def subscribed() -> bool:
            return all(any(i.node_name == node_name for i in self.node.get_subscriptions_info_by_topic(t)) for t in topics)

        return wait_until(lambda: not alive() or subscribed(), timeout) and alive()

    def play(self, loops: int = 1, progress: bool = False) -> int:
        count = 0
        with Reader(self.bag) as reader, tqdm(total=loops * reader.message_count, desc="play", unit="msg", disable=not progress) as bar:
            conns = [c for c in reader.connections if c.topic in self.connections]
            for _ in range(loops):
                start_wall, start_bag = time.monotonic(), None
                for conn, timestamp, raw in reader.messages(connections=conns):
                    if start_bag is None:
                        start_bag = timestamp
                    if self.rate > 0:
                        due = start_wall + (timestamp - start_bag) / 1e9 / self.rate
                        delay = due - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                    self.publishers[conn.topic].publish(bytes(raw))
                    self.sent[conn.topic].append(time.time_ns())
                    count += 1
                    bar.update(1)
        return count


class Recorder:
    """Subscribe to topics (serialized) and write what arrives into a rosbag2, stamped on arrival."""

    def __init__(self, node: Node, topics: dict[str, str], out: str | Path | None = None, storage: str = "mcap") -> None:
        self.node = node
        self.topics = topics
        self.received: dict[str, list[tuple[int, bytes]]] = {t: [] for t in topics}
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.subs = [node.create_subscription(msg_class(m), t, lambda raw, topic=t: self._on(topic, raw), qos, raw=True) for t, m in topics.items()]
        self.out = Path(out) if out else None
        self.storage = storage

    def _on(self, topic: str, raw: bytes) -> None:
        self.received[topic].append((time.time_ns(), raw))

    def count(self, topic: str) -> int:
        return len(self.received[topic])

    def matched(self, topics: list[str]) -> bool:
        """Each of ``topics``' subscriptions here has matched a publisher (this end of the match)."""
        subs = dict(zip(self.topics, self.subs, strict=True))
        return all(subs[t].get_publisher_count() > 0 for t in topics)

    def messages(self, topic: str) -> list:
        """Deserialized rclpy messages received on ``topic``."""
        from rclpy.serialization import deserialize_message

        cls = msg_class(self.topics[topic])
        return [deserialize_message(raw, cls) for _, raw in self.received[topic]]

    def write(self, extra: dict[str, tuple[str, list[tuple[int, bytes]]]] | None = None) -> Path:
        """Write everything received (plus ``extra`` topic -> (type, [(ns, cdr)])) to ``self.out``."""
        if self.out is None:
            raise ValueError("Recorder was created without an output path")
        streams = {t: (self.topics[t], msgs) for t, msgs in self.received.items()}
        streams.update(extra or {})
        records = sorted((stamp, topic, raw) for topic, (_, msgs) in streams.items() for stamp, raw in msgs)
        with BagWriter(self.out, self.storage) as bag:
            for stamp, topic, raw in records:
                bag.write_raw(topic, streams[topic][0], stamp, raw)
        return self.out

"""Readers of the node's outputs that will never get a message, each named once at WARN.

rclpy gives every publisher two event handlers by default, for a reader asking an incompatible QoS
and one of another type, and they log it. The executor walks every handler in Python each time it
wakes: with two cameras' thirty publishers that was 0.7-1.6 ms of a core per frame served, about
half of the executor's work (BENCHMARKS.md, 2026-12-06, third sitting). So the node makes its publishers without them
(:data:`NO_EVENT_HANDLERS`) and asks the ROS graph instead, from its once-a-second timer, for the
same two mistakes.
"""

from __future__ import annotations

from rclpy.event_handler import PublisherEventCallbacks
from rclpy.qos import QoSCompatibility, qos_check_compatible

#: publishers without rclpy's default event handlers: :class:`ReaderWatch` says what they said
NO_EVENT_HANDLERS = PublisherEventCallbacks(use_default_callbacks=False)
UNKNOWN_NODE = "_NODE_NAME_UNKNOWN_"  # what the graph says of a reader before its node's name arrives
NAME_WAIT_CHECKS = 3  # checks a reader is given for its node's name before it is named without one


def type_name(msg_class: type) -> str:
    """``sensor_msgs/msg/Image`` for the class ``sensor_msgs.msg.Image``, as the graph names types."""
    return f"{msg_class.__module__.split('.')[0]}/msg/{msg_class.__name__}"


class ReaderWatch:
    """Asks the graph who reads each publisher's topic; a reader that asks a QoS the publisher cannot
    give, or another type, is named once (by its node and topic) for as long as this watch lives."""

    def __init__(self, node) -> None:
        self.node = node
        self._said: set[tuple] = set()
        self._unnamed: dict[tuple, int] = {}

    def check(self, publishers) -> list[str]:
        """One line per reader newly found that can never be served by one of ``publishers``."""
        lines = []
        for pub in publishers:
            topic, ours = pub.topic_name, type_name(pub.msg_type)
            readers = self.node.get_subscriptions_info_by_topic(topic)
            if not readers:
                continue
            offered = self._offered(topic, pub.qos_profile)
            for info in readers:
                key = (topic, bytes(info.endpoint_gid))
                if key in self._said:
                    continue
                if info.node_name == UNKNOWN_NODE and self._unnamed.setdefault(key, 0) < NAME_WAIT_CHECKS:
                    self._unnamed[key] += 1  # just discovered: its node's name comes a moment later
                    continue
                reader = "a reader" if info.node_name == UNKNOWN_NODE else f"{info.node_namespace.rstrip('/')}/{info.node_name}"
                if info.topic_type != ours:
                    line = f"{reader} subscribes to {topic} as {info.topic_type}, but it is {ours}: it will get nothing"
                else:
                    compatible, why = qos_check_compatible(offered, info.qos_profile)
                    if compatible != QoSCompatibility.ERROR:
                        continue
                    line = f"{reader} subscribes to {topic} with a QoS it cannot be given ({why.replace('ERROR: ', '').strip(' ;')}): it will get nothing"
                self._said.add(key)
                lines.append(line)
        return lines

    def _offered(self, topic: str, fallback):
        """This node's publisher's QoS as the graph reports it: the readers' come from there too, with
        the middleware's own "infinite" deadline and lease, which rclpy's profile (0: unspecified)
        would not match."""
        me = (self.node.get_namespace().rstrip("/"), self.node.get_name())
        for info in self.node.get_publishers_info_by_topic(topic):
            if (info.node_namespace.rstrip("/"), info.node_name) == me:
                return info.qos_profile
        return fallback

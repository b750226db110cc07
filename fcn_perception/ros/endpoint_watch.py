"""Endpoints that can never meet one of the node's, each named once at WARN: a reader of an output
that asks a QoS the output cannot give or another type, and a camera publisher whose frames the
node's subscription cannot take (a best-effort camera for ``qos_reliability: reliable``, another
type on the topic).

rclpy gives every publisher and subscription two event handlers by default, for those two mistakes,
and they log them. The executor walks every handler in Python each time it wakes: with two cameras'
thirty publishers that was 0.7-1.6 ms of a core per frame served, about half of the executor's work
(BENCHMARKS.md, 2026-12-06, third sitting), and the four subscriptions' eight cost 110-200 us more
per message taken (seventh sitting). So the node makes both without them (:data:`NO_EVENT_HANDLERS`,
:data:`NO_SUBSCRIPTION_EVENT_HANDLERS`) and asks the ROS graph instead, from its once-a-second
timer, for the same mistakes.
"""

from __future__ import annotations

from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.qos import QoSCompatibility, qos_check_compatible

#: publishers without rclpy's default event handlers: :class:`EndpointWatch` says what they said
NO_EVENT_HANDLERS = PublisherEventCallbacks(use_default_callbacks=False)
#: subscriptions without them, likewise
NO_SUBSCRIPTION_EVENT_HANDLERS = SubscriptionEventCallbacks(use_default_callbacks=False)
UNKNOWN_NODE = "_NODE_NAME_UNKNOWN_"  # what the graph says of an endpoint before its node's name arrives
NAME_WAIT_CHECKS = 3  # checks an endpoint is given for its node's name before it is named without one


def type_name(msg_class: type) -> str:
    """``sensor_msgs/msg/Image`` for the class ``sensor_msgs.msg.Image``, as the graph names types."""
    return f"{msg_class.__module__.split('.')[0]}/msg/{msg_class.__name__}"


class EndpointWatch:
    """Asks the graph who reads each of the node's publishers' topics and who writes each of its
    subscriptions' topics; an endpoint that can never meet the node's is named once (by its node and
    topic) for as long as this watch lives."""

    def __init__(self, node) -> None:
        self.node = node
        self._said: set[tuple] = set()
        self._unnamed: dict[tuple, int] = {}

    def check(self, publishers) -> list[str]:
        """One line per reader newly found that can never be served by one of ``publishers``."""
        return self._check(publishers, "reader")

    def check_writers(self, subscriptions) -> list[str]:
        """One line per publisher newly found whose messages one of ``subscriptions`` can never take."""
        return self._check(subscriptions, "writer")

    def _check(self, ours, role: str) -> list[str]:
        """``ours``: the node's publishers (``role`` "reader": who reads them) or subscriptions ("writer")."""
        readers, writers = self.node.get_subscriptions_info_by_topic, self.node.get_publishers_info_by_topic
        others_of, own_of = (readers, writers) if role == "reader" else (writers, readers)
        lines = []
        for endpoint in ours:
            topic = endpoint.topic_name
            others = others_of(topic)
            if others:
                mine = self._own(topic, endpoint.qos_profile, own_of)
                lines += self._mismatches(topic, type_name(endpoint.msg_type), others, mine, role)
        return lines

    def _mismatches(self, topic: str, ours: str, endpoints, mine, role: str) -> list[str]:
        """``mine``: the QoS of the node's endpoint on ``topic``, offered to readers, asked of writers."""
        lines = []
        for info in endpoints:
            key = (topic, bytes(info.endpoint_gid))
            if key in self._said or self._is_ours(info):
                continue
            if info.node_name == UNKNOWN_NODE and self._unnamed.setdefault(key, 0) < NAME_WAIT_CHECKS:
                self._unnamed[key] += 1  # just discovered: its node's name comes a moment later
                continue
            who = f"a {role}" if info.node_name == UNKNOWN_NODE else f"{info.node_namespace.rstrip('/')}/{info.node_name}"
            compatible, why = qos_check_compatible(*((mine, info.qos_profile) if role == "reader" else (info.qos_profile, mine)))
            why = why.replace("ERROR: ", "").strip(" ;")
            if role == "reader" and info.topic_type != ours:
                line = f"{who} subscribes to {topic} as {info.topic_type}, but it is {ours}: it will get nothing"
            elif role == "reader" and compatible == QoSCompatibility.ERROR:
                line = f"{who} subscribes to {topic} with a QoS it cannot be given ({why}): it will get nothing"
            elif role == "writer" and info.topic_type != ours:
                line = f"{who} publishes {topic} as {info.topic_type}, but this node takes {ours}: its messages are never received"
            elif role == "writer" and compatible == QoSCompatibility.ERROR:
                line = f"{who} publishes {topic} with a QoS this node's subscription cannot take ({why}): its messages are never received"
            else:
                continue
            self._said.add(key)
            lines.append(line)
        return lines

    def _is_ours(self, info) -> bool:
        return (info.node_namespace.rstrip("/"), info.node_name) == self._me()

    def _me(self) -> tuple[str, str]:
        return self.node.get_namespace().rstrip("/"), self.node.get_name()

    def _own(self, topic: str, fallback, endpoints_by_topic):
        """This node's endpoint's QoS on ``topic`` as the graph reports it: the others' come from there
        too, with the middleware's own "infinite" deadline and lease, which rclpy's profile (0:
        unspecified) would not match."""
        for info in endpoints_by_topic(topic):
            if self._is_ours(info):
                return info.qos_profile
        return fallback

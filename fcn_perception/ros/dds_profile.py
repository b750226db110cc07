"""The node's own Fast DDS transports: a shared-memory segment its camera-sized masks fit in.

Why: Fast DDS hands a message to a process on the same computer through the sender's
shared-memory segment, 512 KB unless a profile says otherwise. A 1280x720 mask (900 KB) does not
fit, so it went over UDP on the loopback in 64 KB fragments instead: with one camera the mask
reached its subscriber 7-16 ms later than through shared memory (p50 31.2-31.9 against 20.8-24.1 ms
from the camera's stamp at 1280x720, 38.1-40.5 against 24.0-25.1 ms at 1920x1080; BENCHMARKS.md,
thirteenth sitting).
``fastdds_node.xml`` gives the node's participant a 4 MB segment. Fast DDS allocates it whole at
start, so it counts in the node's RSS: 4 MB holds four 1280x720 masks and costs 4 MB.

The environment's own choice wins: a profile named in ``FASTRTPS_DEFAULT_PROFILES_FILE`` or
``FASTDDS_DEFAULT_PROFILES_FILE`` (README's discovery profile carries the same segment), transports
chosen with ``FASTDDS_BUILTIN_TRANSPORTS``, or an RMW other than Fast DDS are left as they are.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

PROFILE = Path(__file__).with_name("fastdds_node.xml")
#: where Fast DDS 2 (Jazzy) and Fast DDS 3 (Kilted) look for a profile
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def use_node_profile(environ: MutableMapping[str, str] = os.environ) -> str:
    """Name the node's profile for Fast DDS unless the environment has chosen; call before
    ``rclpy.init``. Returns the line for the node's log: which transports its participant has."""
    rmw = environ.get("RMW_IMPLEMENTATION", "") or "rmw_fastrtps_cpp"  # the default of Jazzy and Kilted
    if not rmw.startswith("rmw_fastrtps"):
        return f"DDS: {rmw}, as the environment chose"
    for name in (*PROFILE_VARIABLES, "FASTDDS_BUILTIN_TRANSPORTS"):
        if environ.get(name):
            return f"Fast DDS: {name}={environ[name]} from the environment (camera-sized masks fit shared memory only where its segment holds them: README)"
    for name in PROFILE_VARIABLES:
        environ[name] = str(PROFILE)
    return f"Fast DDS: the node's own profile ({PROFILE.name}): a 4 MB shared-memory segment, so its masks reach processes on this computer without UDP"

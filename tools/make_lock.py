"""Write the pinned lock of the current venv: ``.venv/bin/python tools/make_lock.py > requirements/jazzy.lock``.

ROS 2 wheels from PyPI carry their packages' own ``*.egg-info`` folders inside site-packages;
``pip freeze`` lists those as if they were installable distributions. Only ``*.dist-info``
entries (what pip really installed) are pinned here.
"""

import sys
from importlib import metadata

SKIP = {"pip", "setuptools", "wheel"}

lines = {}
for dist in metadata.distributions():
    path = str(getattr(dist, "_path", ""))
    name = dist.metadata["Name"]
    if not path.endswith(".dist-info") or name.lower() in SKIP:
        continue
    version = dist.version.split("+")[0]  # torch 2.13.0+cpu -> 2.13.0: CPU or CUDA build chosen at install
    lines[name.lower()] = f"{name}=={version}"
distro = sys.argv[1] if len(sys.argv) > 1 else "jazzy"
print(f"# Pinned environment for ROS 2 {distro.capitalize()} (tools/make_lock.py). torch: the CPU wheel on machines")
print("# without a GPU; on a CUDA machine install the CUDA build of the same torch version first.")
print("\n".join(lines[k] for k in sorted(lines)))

import os
import py_compile
import sys
from glob import glob

from setuptools import find_packages, setup
from setuptools.command.install_lib import install_lib

package_name = "fcn_perception"


class InstallLib(install_lib):
    """Byte-compiles the installed modules also where PYTHONDONTWRITEBYTECODE is set (containers, this
    project's CI), which makes setuptools skip it: the install tree is written once, and without
    its byte code every start of the node compiled the package's source again, 0.1-0.15 s of its
    first mask (BENCHMARKS.md, 2026-12-07, sixteenth sitting). ``--no-compile`` still skips it."""

    def byte_compile(self, files: list[str]) -> None:
        if not sys.dont_write_bytecode:
            return super().byte_compile(files)
        root = self.get_finalized_command("install").root
        if self.compile:
            for path in files:
                if path.endswith(".py"):  # named as installed, without a packager's staging --root
                    shown = "/" + os.path.relpath(path, root) if root else path
                    py_compile.compile(path, dfile=shown, doraise=True)


setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "fcn_perception.studies"]),  # studies: source checkouts only
    package_data={package_name: ["models/*.pt", "models/*.onnx", "models/*.json", "ros/*.xml", "sample/*.md", "sample/*/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml", "README.md"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    install_requires=["setuptools"],
    # Ray: only for `replay --ray` on a cluster (pinned with the rest in requirements/*.lock)
    extras_require={"ray": ["ray==2.60.0"]},
    zip_safe=False,
    cmdclass={"install_lib": InstallLib},
    maintainer="fcn_perception developers",
    maintainer_email="fcn-perception@example.com",
    description="FCN road-scene segmentation node: masks and drivable-area polygons",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "fcn_perception_node = fcn_perception.ros.node:main",
            "fcn-perception = fcn_perception.tools.cli:main",
        ],
    },
)

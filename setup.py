from glob import glob

from setuptools import find_packages, setup

package_name = "fcn_perception"

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

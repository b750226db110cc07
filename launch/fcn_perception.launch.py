"""Launch fcn_perception_node with the package's parameter file.

    ros2 launch fcn_perception fcn_perception.launch.py
    ros2 launch fcn_perception fcn_perception.launch.py namespace:=perception \
        image_topics:="['/cam_front/image_raw/compressed', '/cam_rear/image_raw']"
    ros2 launch fcn_perception fcn_perception.launch.py params_file:=/path/to/my.yaml
    ros2 launch fcn_perception fcn_perception.launch.py autostart:=false   # a lifecycle manager sequences it
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.conditions import LaunchConfigurationEquals, LaunchConfigurationNotEquals
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from launch import LaunchDescription


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("fcn_perception"), "config", "fcn_perception.yaml")
    params_file = LaunchConfiguration("params_file")
    autostart = {"autostart": LaunchConfiguration("autostart")}  # "true"/"false", parsed as YAML by launch_ros
    common = {
        "package": "fcn_perception",
        "executable": "fcn_perception_node",
        "name": "fcn_perception_node",
        "namespace": LaunchConfiguration("namespace"),
        "output": "screen",
        "emulate_tty": True,
        "remappings": [("/diagnostics", LaunchConfiguration("diagnostics_topic"))],
    }
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=default_params, description="ROS 2 parameter file"),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
            DeclareLaunchArgument("image_topics", default_value="", description="override the YAML's camera topic list, e.g. \"['/a/image_raw']\""),
            DeclareLaunchArgument("diagnostics_topic", default_value="/diagnostics", description="remap /diagnostics"),
            DeclareLaunchArgument("autostart", default_value="true", description="configure and activate at start; false: wait for lifecycle transitions"),
            # one node serves all cameras; image_topics on the command line wins over the YAML (no
            # Python expression on the value: a list of quoted topics is not valid inside one)
            LifecycleNode(**common, parameters=[params_file, autostart], condition=LaunchConfigurationEquals("image_topics", "")),
            LifecycleNode(
                **common,
                parameters=[params_file, autostart, {"image_topics": LaunchConfiguration("image_topics")}],
                condition=LaunchConfigurationNotEquals("image_topics", ""),
            ),
        ]
    )

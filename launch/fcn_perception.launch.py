"""Launch fcn_perception_node with the package's parameter file.

    ros2 launch fcn_perception fcn_perception.launch.py
    ros2 launch fcn_perception fcn_perception.launch.py namespace:=perception \
        image_topics:="['/cam_front/image_raw/compressed', '/cam_rear/image_raw']"
    ros2 launch fcn_perception fcn_perception.launch.py params_file:=/path/to/my.yaml
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("fcn_perception"), "config", "fcn_perception.yaml")
    params_file = LaunchConfiguration("params_file")
    image_topics = LaunchConfiguration("image_topics")
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
            DeclareLaunchArgument("image_topics", default_value="", description="override the YAML's camera topic list"),
            DeclareLaunchArgument("diagnostics_topic", default_value="/diagnostics", description="remap /diagnostics"),
            # one node serves all cameras; image_topics on the command line wins over the YAML
            Node(**common, parameters=[params_file], condition=IfCondition(_is_empty(image_topics))),
            Node(**common, parameters=[params_file, {"image_topics": image_topics}], condition=UnlessCondition(_is_empty(image_topics))),
        ]
    )


def _is_empty(value):
    from launch.substitutions import PythonExpression

    return PythonExpression(["'", value, "' == ''"])

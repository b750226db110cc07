import sys

from fcn_perception.tools.cli import main

sys.exit(main())

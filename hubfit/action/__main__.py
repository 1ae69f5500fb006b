import sys

from hubfit.action.run import main

sys.exit(main())

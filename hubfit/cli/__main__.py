import sys

from hubfit.cli.commands import main

sys.exit(main())

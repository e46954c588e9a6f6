import sys

from jobpipe.cli.main import main

sys.exit(main())

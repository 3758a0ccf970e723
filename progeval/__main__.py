import sys

from progeval.cli import main

sys.exit(main())

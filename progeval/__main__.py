import sys

try:
    from progeval.cli import main
except KeyboardInterrupt:  # interrupted while importing: nothing has started
    sys.exit(130)

sys.exit(main())

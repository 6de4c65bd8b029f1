"""`python -m helpers`: the command line (see `helpers.cli`)."""

from helpers.cli import main

if __name__ == "__main__":
    main()

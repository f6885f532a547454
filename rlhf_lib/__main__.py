"""`python -m rlhf_lib STAGE ...`: the course's command line (see `rlhf_lib.cli`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m rlhf_lib"))

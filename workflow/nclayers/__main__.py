import os

# Bitwise-reproducible MKL results run to run (independent of memory alignment), set before
# torch loads MKL: the same config and seed must give the same numbers on CPU.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from nclayers.cli import main  # noqa: E402

main()

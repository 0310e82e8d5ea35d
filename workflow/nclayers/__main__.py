import atexit
import gc
import os

# Bitwise-reproducible MKL results run to run (independent of memory alignment), set before
# torch loads MKL: the same config and seed must give the same numbers on CPU.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

# On exit Python's last garbage collections walk every object still alive, the million that
# torch, pandas and matplotlib create on import: 0.3-0.6 s of every job
# (benchmarks/README.md). Frozen objects are left out of those walks (refcounts still free
# them). Registered first, so it runs after every other exit handler.
atexit.register(gc.freeze)

from nclayers.cli import main  # noqa: E402

main()

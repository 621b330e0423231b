"""mmscel: a competition stack for multimodal single-cell prediction."""

import os

# OpenMP threads that spin while waiting (the default) steal the core another
# thread needs whenever the machine is busy: a LightGBM fold went from 39 s to
# several minutes on a loaded 2-core machine. Passive waiting costs nothing
# measurable when the machine is idle. Set before any OpenMP library loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

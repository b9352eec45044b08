"""Voxflow's test suite."""

import atexit
import os
import shutil
import tempfile

# Metrics: prometheus_client picks multiprocess mode when first imported, in whichever test
# module imports it first. Give the suite a metrics directory of its own (the processes it
# starts inherit it, unless a test gives them another) instead of one under .voxflow/.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _METRICS_DIR = tempfile.mkdtemp(prefix="vf-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _METRICS_DIR
    atexit.register(shutil.rmtree, _METRICS_DIR, ignore_errors=True)

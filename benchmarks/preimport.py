"""Run a script after importing some modules: `python -m benchmarks.preimport MODS SCRIPT ARGS`.

`MODS` is a comma-separated list of modules imported first (e.g. `transports.webrtc`,
which imports and patches Pipecat). `benchmarks/method_ab.py` runs the bare echo peer
this way to measure what the imports alone do to it; the bare peer itself imports none.
"""

import importlib
import os
import runpy
import sys

if __name__ == "__main__":
    modules, script, *sys.argv[1:] = sys.argv[1:]
    for module in filter(None, modules.split(",")):
        importlib.import_module(module)
    sys.argv[0] = script
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")

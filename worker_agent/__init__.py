"""Inventiv's worker agent: runs on a GPU machine beside vLLM and reports to the control plane.

It imports nothing from the rest of the repository (no Django): it is shipped to GPU machines on its
own, with `worker_agent/requirements.txt`. The package also holds the vLLM-protocol simulator.
"""

__version__ = "0.1.0"

"""Hardware cost model: storage, bit-operations, area, energy and latency per op and per model.

``tensor_bytes`` / ``bits_per_element`` (:mod:`.storage`) are exact storage figures; ``op_cost`` and
``model_cost`` (:mod:`.model`) price matmuls and convs with area calibrated on masec's own RTL
(:mod:`.calibration`) and energy from Horowitz (ISSCC 2014).
"""

from .calibration import CALIBRATION
from .model import ENERGY_PJ, ModelCost, OpCost, format_table, model_cost, op_cost
from .storage import bits_per_element, tensor_bytes

__all__ = [
    "CALIBRATION",
    "ENERGY_PJ",
    "ModelCost",
    "OpCost",
    "bits_per_element",
    "format_table",
    "model_cost",
    "op_cost",
    "tensor_bytes",
]

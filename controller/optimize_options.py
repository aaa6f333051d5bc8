"""What `edgebench optimize` takes beyond its models (the command and the demo):
quantize's choices, the run options and validate's gates and task options, from
runopts (each defined once there)."""

from __future__ import annotations

import argparse

from controller.runopts import add_gate_options, add_run_options, add_task_options


def add_optimize_options(p: argparse.ArgumentParser) -> None:
    """Optimize's options on ``p``."""
    p.add_argument("--original", default=None, metavar="A", help="the original model, with --optimized")
    p.add_argument("--optimized", default=None, metavar="B", help="a variant from another compressor")
    p.add_argument("--calibration", default=None, metavar="CAL.npz", help="calibration samples (quantize)")
    p.add_argument(
        "--validation", required=True, metavar="VAL.npz", help="held-out samples: reference and accuracy"
    )
    p.add_argument("--target", default=None, metavar="METRIC>=X", help="the accuracy target for quantize")
    p.add_argument(
        "--preset", default=None, help="quantize preset: tensorrt, openvino, cpu/xnnpack, tidl, tidl-mmav1"
    )
    p.add_argument(
        "--per-channel", action="store_true", default=None, help="per-channel weights (the default)"
    )
    p.add_argument(
        "--per-tensor", action="store_true", help="one scale per weight tensor (a target that needs it)"
    )
    p.add_argument(
        "--out-dir", default="edgebench-optimize", metavar="DIR", help="models, reference, reports"
    )
    add_run_options(p)
    g = p.add_argument_group("validation gates (on the optimized model)")
    add_gate_options(g, helps=False)
    add_task_options(g)

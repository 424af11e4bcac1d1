"""TensorFlow's thread pools for AnomiGAN's training processes.

A training step is a few thousand small ops (kernels on a 10-record batch). Splitting each op
over threads costs more in hand-offs than it saves, while independent ops (the networks' and
the attacks' branches) can run side by side: one thread per op and one op per core makes the
step markedly faster (`bench/train_speed.py`). Bulk anonymisation is the opposite case (large
batches whose ops do split well), so serving and batch jobs keep TensorFlow's defaults.
"""

from __future__ import annotations

import logging
import os

import tensorflow as tf

log = logging.getLogger("anomigan.method.runtime")


def use_step_threads(cores: int | None = None) -> bool:
    """One thread per op, `cores` (default: all) ops at once. Must run before TensorFlow runs
    its first op; if it already has, nothing changes and False is returned."""
    cores = max(1, cores or os.cpu_count() or 1)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(cores)
    except RuntimeError:
        log.info("TensorFlow already started: its thread pools stay as they are")
        return False
    log.info("TensorFlow: one thread per op, %d ops at once", cores)
    return True

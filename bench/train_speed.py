"""Training step time, train time and anonymisation speed of `anomigan train` (defaults).

Runs the real job (target first, then AnomiGAN) in a temporary SQLite store, then times the
training step alone on the same data and target, and prints: ms per training step at the
default batch (goal <= 4 ms on 2 CPU cores), the `train` job's wall time (goal < 60 s on
breast, start-up included: time the whole command), and anonymised rows per second in batches
(the prediction guard included, as served).

    time .venv/bin/python bench/train_speed.py [--dataset breast] [--steps N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="breast")
    parser.add_argument("--steps", type=int, default=None, help="default: GANConfig's")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="anomigan-bench-"))
    os.chdir(work)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"

    import numpy as np

    from anomigan.method.runtime import use_step_threads

    use_step_threads()  # as the `train` command does
    from anomigan.method.anonymizers import AnomiGANAnonymizer
    from anomigan.method.gan import TrainedEncoder
    from anomigan.mlops import tracking
    from anomigan.mlops.jobs import load_or_train_target, prepare, train_job
    from anomigan.privacy.evaluation import throughput

    tracking.configure()
    start = time.perf_counter()
    result = train_job(args.dataset, steps=args.steps, seed=0)
    wall = time.perf_counter() - start

    prep = prepare(args.dataset, None)
    target, codec, _ = load_or_train_target(prep, None)
    uri = f"models:/{result['model_name']}/{result['version']}"
    folder = tracking.download_model_artifacts(uri, "model")
    trained = TrainedEncoder.load(folder, target.predict_proba)
    x = np.concatenate([codec.encode(prep.train.features), codec.encode(prep.test.features)])
    guarded = AnomiGANAnonymizer(trained, target.predict)
    print(f"dataset: {args.dataset}")
    print(f"train step, batch {trained.config.batch_size}: {step_ms(prep, target, codec):.2f} ms")
    print(f"train_seconds (GAN only): {result['train_seconds']:.1f}")
    print(f"job wall seconds (target + GAN + evaluation + logging): {wall:.1f}")
    unguarded = AnomiGANAnonymizer(trained, target.predict, max_resample=0)
    for name, anon in (("guarded", guarded), ("guard off", unguarded)):
        rows = throughput(anon, x, n_rows=200_000)
        print(f"anonymize rows/s, 200k rows, {name} (training threads): {rows:,.0f}")
    print(f"prediction_agreement: {result['prediction_agreement']:.3f}")
    print(f"reid_rate: {result['reid_rate']:.3f}")
    print(f"reid_rate_oracle: {result['reid_rate_oracle']:.3f}")


def step_ms(prep, target, codec, n_steps: int = 1000) -> float:
    """Milliseconds per training step of the default GANConfig, after tracing and warm-up."""
    import tensorflow as tf

    from anomigan.method.anonymizers import ClassCopula
    from anomigan.method.gan import AnomiGAN, GANConfig, predicted_classes

    x = codec.encode(prep.train.features)
    config = GANConfig(seed=0)
    prior = ClassCopula.fit(x, lambda z: predicted_classes(target.model, z), codec.model_blocks())
    gan = AnomiGAN(x, target.model, config, prior.quantized())
    run_steps = gan.train_steps()  # as `train_anomigan` runs them: a logged window per call
    window = tf.constant(config.log_every, tf.int32)
    run_steps(window).numpy()
    start = time.perf_counter()
    for _ in range(n_steps // config.log_every):
        run_steps(window).numpy()
    return (time.perf_counter() - start) / n_steps * 1000


if __name__ == "__main__":
    main()

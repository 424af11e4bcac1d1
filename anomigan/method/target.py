"""The target classifier D2: a small Keras network on the codec's model space.

It must be differentiable because the encoder is trained through its gradients, so it is a
Keras model (softmax over the classes) rather than any scikit-learn estimator.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from anomigan.method.inference import SMALL_BATCH, DenseStack
from anomigan.method.scores import accuracy_auc


@dataclass
class TargetConfig:
    """Hyper-parameters of the target classifier."""

    hidden: int = 32
    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    dropout: float = 0.1
    seed: int = 0


def build_target(n_inputs: int, n_classes: int, config: TargetConfig) -> keras.Model:
    """A two-layer MLP: enough for the paper's data sets, and cheap to back-propagate through."""
    inputs = keras.Input(shape=(n_inputs,), name="x")
    h = keras.layers.Dense(config.hidden, activation="relu")(inputs)
    h = keras.layers.Dropout(config.dropout)(h)
    h = keras.layers.Dense(config.hidden // 2, activation="relu")(h)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="proba")(h)
    return keras.Model(inputs, outputs, name="target")


class LabelVocabulary:
    """Maps raw label values to class indices and back; the order is the sorted raw labels."""

    def __init__(self, classes: list[str]):
        self.classes = list(classes)
        self._index = {c: i for i, c in enumerate(self.classes)}

    @classmethod
    def fit(cls, labels) -> LabelVocabulary:
        return cls(sorted({str(v) for v in labels}))

    def encode(self, labels) -> np.ndarray:
        return np.array([self._index[str(v)] for v in labels], dtype=np.int64)

    def decode(self, idx: np.ndarray) -> list[str]:
        return [self.classes[int(i)] for i in idx]


@dataclass
class TrainedTarget:
    """A fitted target classifier with its label vocabulary."""

    model: keras.Model
    vocabulary: LabelVocabulary
    config: TargetConfig

    def __post_init__(self) -> None:
        # a concrete function: calling it skips tf.function's per-call argument binding
        spec = tf.TensorSpec([None, self.model.input_shape[-1]], tf.float32)
        self._forward = tf.function(
            lambda x: self.model(x, training=False), input_signature=[spec]
        ).get_concrete_function()
        self._small = DenseStack.from_keras(self.model)  # the model is frozen

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities; a `tf.function` call, not `model.predict` (whose per-call set-up
        dwarfs a small batch), or numpy for a few rows (a TensorFlow call has a fixed cost)."""
        if self._small is not None and 0 < len(x) <= SMALL_BATCH:
            return self._small.forward(x)
        out = [
            self._forward(tf.constant(x[i : i + 65536], tf.float32)).numpy()
            for i in range(0, len(x), 65536)
        ]
        return np.concatenate(out) if out else np.zeros((0, len(self.vocabulary.classes)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x).argmax(axis=1)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        acc, auc = accuracy_auc(y, self.predict_proba(x))
        return {"accuracy": acc, "auc": auc}

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / "target.keras")
        meta = {"classes": self.vocabulary.classes, "config": asdict(self.config)}
        (directory / "target.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> TrainedTarget:
        directory = Path(directory)
        model = keras.models.load_model(directory / "target.keras", compile=False)
        model.trainable = False
        meta = json.loads((directory / "target.json").read_text())
        return cls(model, LabelVocabulary(meta["classes"]), TargetConfig(**meta["config"]))


def train_target(
    x_train: np.ndarray, y_train: np.ndarray, n_classes: int, config: TargetConfig
) -> keras.Model:
    """Fit the classifier on model-space records; seeded so a run is reproducible."""
    keras.utils.set_random_seed(config.seed)
    model = build_target(x_train.shape[1], n_classes, config)
    model.compile(
        optimizer=keras.optimizers.Adam(config.lr),
        loss="sparse_categorical_crossentropy",
    )
    model.fit(
        x_train.astype(np.float32),
        y_train,
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=0,
    )
    model.trainable = False
    return model

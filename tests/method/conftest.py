"""The toy data set and the target classifier the AnomiGAN tests train against (one per module)."""

import keras
import numpy as np
import pytest

#: features of the toy data set: two classes, every feature shifted by the class
N_FEATURES = 12


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    x = np.clip(0.5 + (y[:, None] - 0.5) * 0.4 + rng.normal(0, 0.15, (300, N_FEATURES)), 0, 1)
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def target(data: tuple[np.ndarray, np.ndarray]) -> keras.Model:
    x, y = data
    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [
            keras.Input((N_FEATURES,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(x, y, epochs=20, batch_size=32, verbose=0)
    return m

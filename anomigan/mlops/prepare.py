"""A data set made ready for a job: loaded, validated, split three ways, codec fitted.

Every job calls `prepare` before it opens a run, so a data set that fails validation leaves
nothing logged or registered. `split_tags` is what identifies a split in the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anomigan.data import TEST_SIZE, VAL_SIZE, Dataset, load_dataset, split_dataset
from anomigan.data.codec import RecordCodec
from anomigan.method.target import TrainedTarget
from anomigan.mlops import tracking
from anomigan.privacy.evaluation import EvalData


@dataclass
class Prepared:
    """A data set split and encoded the way every job needs it."""

    spec: str  # what the user passed as `dataset`: a name or a CSV path
    dataset: Dataset
    train: Dataset  # what the target and the encoder are trained on
    val: Dataset  # carved from the training split: every choice made from measurements
    test: Dataset  # only reported
    codec: RecordCodec
    x_train: np.ndarray
    x_val: np.ndarray
    x_test: np.ndarray
    split_seed: int
    test_size: float
    val_size: float

    @property
    def x_all(self) -> np.ndarray:
        return np.concatenate([self.x_train, self.x_val, self.x_test])

    def eval_data(self, target: TrainedTarget, codec: RecordCodec) -> EvalData:
        """The split in model space, encoded with the target's own codec and label vocabulary
        (the target was fitted on the same split, so the codec is the same fit)."""
        return EvalData(
            codec.encode(self.train.features),
            target.vocabulary.encode(self.train.labels),
            codec.encode(self.test.features),
            target.vocabulary.encode(self.test.labels),
            codec.encode(self.val.features),
            target.vocabulary.encode(self.val.labels),
            blocks=codec.model_blocks(),
        )

    def log_inputs(self) -> dict[str, str]:
        """The three splits as MLflow dataset inputs of the active run (metadata only);
        returns their digests."""
        return tracking.log_splits(
            self.dataset.name,
            {"train": self.train, "val": self.val, "test": self.test},
            self.dataset.label,
        )

    def split_params(self) -> dict:
        return {
            "dataset": self.dataset.name,
            "dataset_source": self.dataset.source,
            "label_column": self.dataset.label,
            "n_rows": len(self.dataset.features),
            "n_features": self.dataset.features.shape[1],
            "n_model_features": self.codec.n_outputs,
            "n_train": len(self.train.features),
            "n_val": len(self.val.features),
            "n_test": len(self.test.features),
            "split_seed": self.split_seed,
            "test_size": self.test_size,
            "val_size": self.val_size,
        }


def prepare(
    dataset: str,
    label: str | None,
    split_seed: int = 0,
    test_size: float = TEST_SIZE,
    val_size: float = VAL_SIZE,
) -> Prepared:
    """Load, validate, split (stratified, seeded) into train / validation / test (sizes as
    shares of the whole data set) and fit the codec on the training split only."""
    ds = load_dataset(dataset, label=label or None)
    rest, test = split_dataset(ds, test_size=test_size, seed=split_seed)
    train, val = split_dataset(rest, test_size=val_size / (1.0 - test_size), seed=split_seed)
    codec = RecordCodec().fit(train.features)
    return Prepared(
        spec=dataset,
        dataset=ds,
        train=train,
        val=val,
        test=test,
        codec=codec,
        x_train=codec.encode(train.features),
        x_val=codec.encode(val.features),
        x_test=codec.encode(test.features),
        split_seed=split_seed,
        test_size=test_size,
        val_size=val_size,
    )


def split_tags(prep: Prepared) -> dict[str, str]:
    """What identifies a split: a target and an encoder must share it."""
    return {
        "split_seed": str(prep.split_seed),
        "test_size": f"{prep.test_size:g}",
        "val_size": f"{prep.val_size:g}",
    }

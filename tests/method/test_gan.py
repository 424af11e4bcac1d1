"""AnomiGAN encoder and anonymiser behaviour with real Keras (a few hundred training steps)."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from anomigan.method.anonymizers import ClassCopula, centred_log_proba
from anomigan.method.gan import (
    CORR_TARGETS,
    AnomiGAN,
    GANConfig,
    TrainedEncoder,
    train_anomigan,
)
from anomigan.method.inference import SMALL_BATCH
from anomigan.method.networks import build_critic, build_encoder, build_linker
from anomigan.privacy import attacks, metrics

N_FEATURES = 12  # the toy data set of tests/method/conftest.py


@pytest.fixture(scope="module")
def trained(data: tuple[np.ndarray, np.ndarray], target: keras.Model) -> TrainedEncoder:
    logged: list[int] = []
    cfg = GANConfig(steps=300, seed=0, log_every=100)
    enc = train_anomigan(data[0], target, cfg, callback=lambda s, losses: logged.append(s))
    assert logged == [100, 200, 300]
    return enc


def test_untrained_networks_shapes() -> None:
    enc = build_encoder(N_FEATURES)
    assert enc.n_hidden_layers == 7
    x = np.random.default_rng(0).random((5, N_FEATURES)).astype(np.float32)
    out, hidden = enc.forward(x, np.zeros_like(x))
    assert out.shape == (5, N_FEATURES) and len(hidden) == 7
    assert [tuple(h.shape[1:]) for h in hidden] == enc.hidden_shapes
    assert build_linker(N_FEATURES)(np.zeros((2, 5 * N_FEATURES))).shape == (2, 1)
    assert build_critic(N_FEATURES)(np.zeros((2, N_FEATURES))).shape == (2, 1)


# Up to SMALL_BATCH rows run in numpy, more in TensorFlow: behaviour tests cover both paths.
PATHS = pytest.mark.parametrize("n", [SMALL_BATCH // 2, 3 * SMALL_BATCH], ids=["numpy", "tf"])


@PATHS
def test_output_shape_range_and_randomness(trained: TrainedEncoder, data, n: int) -> None:
    x = data[0][:n]
    a = trained.anonymize(x)
    b = trained.anonymize(x)
    assert a.shape == x.shape and a.min() >= 0.0 and a.max() <= 1.0
    assert np.abs(a - b).mean() > 1e-3  # the same record anonymised twice differs
    np.testing.assert_array_equal(
        trained.anonymize(x, rng_seed=7), trained.anonymize(x, rng_seed=7)
    )


def test_trained_encoder_is_not_identity(trained: TrainedEncoder, data) -> None:
    x = data[0]
    xa = trained.anonymize(np.tile(x[:60], (5, 1)), rng_seed=3)
    src = np.tile(np.arange(60), 5)
    oracle = attacks.reid_rate_oracle(trained.anonymize, xa, x, src, np.random.default_rng(0))
    assert oracle < 0.5
    assert metrics.correlation(np.tile(x[:60], (5, 1)), xa) < 0.99


def test_variances_recorded_and_noise_zero_mean(trained: TrainedEncoder, data) -> None:
    v = trained.variances
    assert v.n_layers == 7
    assert all(np.all(np.isfinite(a)) and np.all(a > 0) for a in v.arrays)
    assert len(json.loads(v.to_json())["mean_variance"]) == 7
    # noise on the last hidden layer is zero-mean: averaged over many draws it matches no noise
    # up to the curvature of the sigmoid output (small)
    x = np.repeat(data[0][:5], 4000, axis=0)
    noisy = trained.anonymize(x, rng_seed=0, noise_scale=1.0, fixed_layer=6).reshape(5, 4000, -1)
    clean = trained.anonymize(x, rng_seed=0, noise_scale=0.0).reshape(5, 4000, -1)
    assert np.abs(noisy - clean).mean() > 1e-3
    assert np.abs(noisy.mean(1) - clean.mean(1)).mean() < 0.2 * np.abs(noisy - clean).mean()


@PATHS
def test_noise_options(trained: TrainedEncoder, data, n: int) -> None:
    x = data[0][:n]
    base = trained.anonymize(x, rng_seed=5, noise_scale=0.0)
    for kw in ({"n_noisy_layers": 3}, {"fixed_layer": 0}, {"n_noisy_layers": 0}):
        out = trained.anonymize(x, rng_seed=5, noise_scale=1.0, **kw)
        assert out.shape == x.shape and np.all(np.isfinite(out))
    np.testing.assert_allclose(trained.anonymize(x, rng_seed=5, n_noisy_layers=0), base)


def test_tf_batch_with_empty_pattern_segments(trained: TrainedEncoder, data) -> None:
    """The TF pass runs one segment per possible pattern (35 with 3 noisy layers of 7); a
    batch just above the numpy size leaves several empty, which must not break it."""
    x = data[0][: SMALL_BATCH + 1]
    for kw in ({"n_noisy_layers": 3}, {"n_noisy_layers": 1}, {"fixed_layer": 2}):
        out = trained.anonymize(x, rng_seed=1, noise_scale=1.0, **kw)
        assert out.shape == x.shape and np.all(np.isfinite(out))


def test_tf_calls_of_any_size_release_the_same_rows(trained: TrainedEncoder, data) -> None:
    """A large release runs in TensorFlow calls of `batch_size` rows, sorted by noise pattern:
    without noise the output is a function of x and r only, so splitting it into many calls
    (each with its own rows of every pattern) must give every record the same release. A
    vanishing noise scale keeps every row's random pattern, so the sort by pattern and the
    write-back in record order are exercised too."""
    x = np.tile(data[0], (-(-5 * SMALL_BATCH // len(data[0])), 1))[: 5 * SMALL_BATCH]
    one = trained.anonymize(x, rng_seed=4, noise_scale=0.0)
    for batch_size in (SMALL_BATCH, 3 * SMALL_BATCH + 7, len(x)):
        for scale, atol in ((0.0, 1e-6), (1e-14, 1e-5)):
            np.testing.assert_allclose(
                trained.anonymize(x, rng_seed=4, noise_scale=scale, batch_size=batch_size),
                one,
                atol=atol,
            )
    noisy = trained.anonymize(x, rng_seed=4, noise_scale=1.0, batch_size=SMALL_BATCH)
    assert noisy.shape == x.shape and np.abs(noisy - one).mean() > 1e-4  # the noise still acts


@pytest.mark.parametrize(
    "kw",
    [
        {"noise_scale": 0.0},
        {"noise_scale": 1.0, "fixed_layer": 0},
        {"noise_scale": 1.0, "fixed_layer": 5},
        {"noise_scale": 1.0},  # one random layer per record: a segment per layer in TF
        {"noise_scale": 1.0, "n_noisy_layers": 3},
    ],
)
def test_small_batches_draw_from_the_same_distribution(trained: TrainedEncoder, data, kw) -> None:
    """Many small calls (numpy) and one large call (TensorFlow) on copies of one record give
    outputs with the same mean and spread: same r distribution, same layer noise."""
    x = np.repeat(data[0][:1], SMALL_BATCH, axis=0)
    small = np.concatenate([trained.anonymize(x, rng_seed=i, **kw) for i in range(40)])
    large = trained.anonymize(np.repeat(x, 40, axis=0), rng_seed=99, **kw)
    spread = large.std(axis=0)
    assert np.abs(small.mean(0) - large.mean(0)).max() < 0.1 * spread.mean() + 0.01
    np.testing.assert_allclose(small.std(axis=0), spread, rtol=0.15, atol=0.003)


def test_save_load_round_trip(trained: TrainedEncoder, data, tmp_path) -> None:
    """A loaded encoder, given its target's predict_proba, releases what the trained one does;
    with the copula prior, the target's predicted classes are enough."""
    trained.save(tmp_path / "enc")
    loaded = TrainedEncoder.load(tmp_path / "enc", trained.predict_proba)
    assert loaded.config == trained.config and trained.config.prior == "score"
    x = data[0][:40]
    np.testing.assert_allclose(
        loaded.anonymize(x, rng_seed=11), trained.anonymize(x, rng_seed=11), atol=1e-6
    )
    assert loaded.history["step"] == trained.history["step"]

    def copula_prior(enc: TrainedEncoder) -> TrainedEncoder:
        return dataclasses.replace(enc, config=dataclasses.replace(enc.config, prior="copula"))

    without_target = copula_prior(TrainedEncoder.load(tmp_path / "enc"))
    classes = trained.predict_proba(x).argmax(axis=1)
    np.testing.assert_allclose(
        without_target.anonymize(x, rng_seed=11, classes=classes),
        copula_prior(trained).anonymize(x, rng_seed=11),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="predicted classes"):
        without_target.anonymize(x)


def test_default_noise_is_noise_factor_delta(trained: TrainedEncoder, data, tmp_path) -> None:
    """Inference noise defaults to noise_factor·δ·var_l; an encoder saved before noise_factor
    existed keeps the paper's δ·var_l it was released with."""
    x = data[0][:200]
    cfg = trained.config
    assert cfg.noise_scale == pytest.approx(cfg.noise_factor * cfg.delta) and cfg.noise_factor < 1
    np.testing.assert_array_equal(
        trained.anonymize(x, rng_seed=3),
        trained.anonymize(x, rng_seed=3, noise_scale=cfg.noise_scale),
    )
    trained.save(tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "config.json").read_text())
    del meta["config"]["noise_factor"], meta["config"]["corr_target"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(meta))
    old = TrainedEncoder.load(tmp_path / "old")
    assert old.config.noise_factor == 1.0 and old.config.noise_scale == cfg.delta
    assert old.config.corr_target == "records"  # what encoders saved before it trained with


@pytest.mark.parametrize("delta", [0.0, 0.4, 1.0])
def test_corr_target_blends_records_and_draws_by_delta(data, target: keras.Model, delta) -> None:
    """The correlation term's target: the records' correlations, the draws r's (no x in them),
    or their δ-blend, which is the records' at δ 0 and the draws' at δ 1."""
    rng = np.random.default_rng(0)
    inp = rng.random((30, N_FEATURES)).astype(np.float32)
    r = rng.random((30, N_FEATURES)).astype(np.float32)
    c_inp, c_r = np.corrcoef(inp, rowvar=False), np.corrcoef(r, rowvar=False)
    assert np.abs(c_inp - c_r).mean() > 0.1  # the two targets differ
    got = {}
    for t in CORR_TARGETS:
        gan = AnomiGAN(data[0], target, GANConfig(delta=delta, corr_target=t, seed=0), prior=None)
        gan.r_bank = np.zeros(1)  # any bank: the uniform prior always matches the records
        got[t] = np.asarray(gan._corr_target(inp, r))
    np.testing.assert_allclose(got["records"], c_inp, atol=1e-4)
    np.testing.assert_allclose(got["prior"], c_r, atol=1e-4)
    np.testing.assert_allclose(got["blend"], (1 - delta) * c_inp + delta * c_r, atol=1e-4)
    gan = AnomiGAN(data[0], target, GANConfig(delta=delta, corr_target="prior", seed=0))
    np.testing.assert_allclose(np.asarray(gan._corr_target(inp, r)), c_inp, atol=1e-4)


def test_steps_run_in_windows_like_one_by_one(data, target: keras.Model) -> None:
    """Training runs a logged window of steps per graph call: the weights and the window's mean
    losses are those of the same steps run one by one."""
    one = train_anomigan(data[0], target, GANConfig(steps=40, seed=0, log_every=1))
    window = train_anomigan(data[0], target, GANConfig(steps=40, seed=0, log_every=20))
    assert window.history["step"] == [20.0, 40.0]
    assert set(window.history) == {"step", "train_seconds", *AnomiGAN.LOSS_NAMES}
    for k in AnomiGAN.LOSS_NAMES:
        np.testing.assert_allclose(
            window.history[k][0], np.mean(one.history[k][:20]), rtol=1e-3, atol=1e-5
        )
    for a, b in zip(one.encoder.get_weights(), window.encoder.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_score_prior_draws_r_nearest_in_the_targets_score(data, target, tmp_path) -> None:
    """prior "score": in training and at inference r is, of `score_draws` same-class draws,
    the nearest to the record in the target's score; a loaded encoder needs the target's
    predict_proba to draw it, and with it releases what the trained one does."""
    x = data[0]

    def proba(z: np.ndarray) -> np.ndarray:
        return np.asarray(target(z, training=False))

    def gap(r) -> float:  # mean L1 distance of r's score to the records'
        return float(np.abs(centred_log_proba(proba(np.asarray(r))) - score).sum(axis=1).mean())

    score, y = centred_log_proba(proba(x)), proba(x).argmax(axis=1)
    copula = ClassCopula.fit(x, lambda z: proba(z).argmax(axis=1))
    drawn = {
        m: AnomiGAN(x, target, GANConfig(prior="score", score_draws=m, seed=0), copula).draw_r(
            tf.constant(y, tf.int32), tf.constant(proba(x))
        )
        for m in (1, 8)
    }
    assert gap(drawn[8]) < 0.7 * gap(drawn[1])
    assert np.mean(proba(np.asarray(drawn[8])).argmax(axis=1) == y) > 0.95

    trained = train_anomigan(x, target, GANConfig(steps=20, seed=0, prior="score", score_draws=8))
    rng = np.random.default_rng
    one = dataclasses.replace(trained, config=dataclasses.replace(trained.config, score_draws=1))
    assert gap(trained.draw_r(x, None, rng(0))) < 0.7 * gap(one.draw_r(x, None, rng(0)))
    trained.save(tmp_path / "enc")
    with pytest.raises(ValueError, match="target's score.*predict_proba"):
        TrainedEncoder.load(tmp_path / "enc").anonymize(x[:5], classes=y[:5])
    loaded = TrainedEncoder.load(tmp_path / "enc", proba)
    for n in (5, 3 * SMALL_BATCH):  # the numpy and the TensorFlow pass
        np.testing.assert_allclose(
            loaded.anonymize(x[:n], rng_seed=3), trained.anonymize(x[:n], rng_seed=3), atol=1e-6
        )

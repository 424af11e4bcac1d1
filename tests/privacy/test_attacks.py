"""Distinguishing games, distance to closest record, inversion and attribute inference on
hand-made anonymisers whose true answers are known."""

import numpy as np
import pytest

from anomigan.privacy import attacks


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).random((200, 6)).astype(np.float32)


def identity(z: np.ndarray) -> np.ndarray:
    return np.array(z, copy=True)


def pure_noise(seed: int = 0):
    rng = np.random.default_rng(seed)
    return lambda z: rng.random(np.shape(z)).astype(np.float32)


def leaky(q: float, seed: int = 0):
    """Releases the record itself with probability q, else noise independent of it: the
    nearest-record adversary's true advantage is exactly q / 2."""
    rng = np.random.default_rng(seed)

    def fn(z: np.ndarray) -> np.ndarray:
        keep = rng.random(len(z)) < q
        return np.where(keep[:, None], z, rng.random(np.shape(z))).astype(np.float32)

    return fn


def test_identity_is_distinguished_always_and_reidentified(x: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    res = attacks.ind_advantage(identity, x, n_games=10_000, rng=rng)
    assert res.advantage == pytest.approx(0.5) and res.n == 10_000
    assert res.ci_low > 0.49 and res.ci_high <= 0.5 + 1e-12
    classes = (x[:, 0] > 0.5).astype(int)
    assert attacks.ind_advantage_same_class(identity, x, classes, 2000, rng).advantage == 0.5
    assert attacks.ind_advantage_oracle(identity, x, classes, 2000, rng).advantage == 0.5
    assert attacks.dcr_median(x, x) == pytest.approx(0.0, abs=1e-6)
    src = np.arange(150, 200)
    models = {k: v for k, v in attacks.inversion_models().items() if not k.startswith("mlp")}
    inv = attacks.reid_rate_inversion(identity, x[src], x, src, np.arange(150), models)
    assert inv["none"] == 1.0 and inv["best"] == 1.0


def test_pure_noise_release_gives_no_advantage(x: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    classes = (x[:, 0] > 0.5).astype(int)
    for res in (
        attacks.ind_advantage(pure_noise(1), x, 10_000, rng),
        attacks.ind_advantage_same_class(pure_noise(2), x, classes, 10_000, rng),
        attacks.ind_advantage_oracle(pure_noise(3), x, classes, 10_000, rng),
    ):
        assert abs(res.advantage) < 0.03  # 6 standard errors: the release carries no signal
    src = np.arange(150, 200)
    release = pure_noise(5)(x[src])
    inv = attacks.reid_rate_inversion(pure_noise(4), release, x, src, np.arange(150), n_aug=2)
    assert set(inv) == {"none", "ridge", "knn", "mlp_64", "mlp_128x128", "mlp_256x256", "best"}
    assert inv["best"] <= 0.12  # chance is 1/200; best of 6 models on 50 targets


def test_intervals_cover_the_true_advantage(x: np.ndarray) -> None:
    """95% Wilson intervals: the known advantage q/2 is inside in (almost) every repeat."""
    covered = 0
    for seed in range(20):
        res = attacks.ind_advantage(leaky(0.3, seed), x, 4000, np.random.default_rng(seed))
        covered += res.ci_low <= 0.15 <= res.ci_high
        assert res.ci_low < res.advantage < res.ci_high
    assert covered >= 16  # expected 19 of 20; 16 or fewer has probability < 2%


def test_class_leak_bound_matches_a_class_only_release() -> None:
    """A release that is the class mean reveals exactly the class: it reaches the bound in the
    random-pair game and nothing in the same-class game."""
    rng = np.random.default_rng(3)
    classes = np.repeat([0, 1], [120, 80])
    x = (classes[:, None] * 5.0 + rng.random((200, 4))).astype(np.float32)
    protos = np.stack([x[classes == k].mean(0) for k in (0, 1)])

    def prototype(z: np.ndarray) -> np.ndarray:
        return protos[(z[:, 0] > 2.5).astype(int)]

    bound = attacks.class_leak_bound(classes)
    expected = 0.5 * (1 - (120 * 119 + 80 * 79) / (200 * 199))
    assert bound.advantage == pytest.approx(expected)
    assert bound.ci_low < expected < bound.ci_high
    game = attacks.ind_advantage(prototype, x, 10_000, rng)
    assert game.ci_low - 0.01 <= expected <= game.ci_high + 0.01
    same = attacks.ind_advantage_same_class(prototype, x, classes, 10_000, rng)
    assert same.ci_low <= 0.0 <= same.ci_high
    assert attacks.class_leak_bound(np.zeros(10)).advantage == 0.0


def test_oracle_beats_nearest_record_on_a_deterministic_scramble(x: np.ndarray) -> None:
    def scramble(z: np.ndarray) -> np.ndarray:
        return (1.0 - z[:, ::-1]) ** 2

    classes = np.zeros(len(x), int)
    rng = np.random.default_rng(4)
    assert attacks.ind_advantage_oracle(scramble, x, classes, 3000, rng).advantage == 0.5
    assert attacks.ind_advantage_same_class(scramble, x, classes, 3000, rng).advantage < 0.3


def test_inversion_learns_an_invertible_scramble(x: np.ndarray) -> None:
    def scramble(z: np.ndarray) -> np.ndarray:
        return 1.0 - z[:, ::-1]

    src = np.arange(100, 200)
    inv = attacks.reid_rate_inversion(scramble, scramble(x[src]), x, src, np.arange(100))
    assert inv["none"] < 0.3
    assert inv["ridge"] == 1.0 and inv["best"] == 1.0
    with pytest.raises(ValueError, match="must not include any target"):
        attacks.reid_rate_inversion(scramble, scramble(x[src]), x, src, np.arange(150))


def test_dcr_median_of_a_shift() -> None:
    x = np.eye(5) * 10
    shifted = x + np.array([0.1, 0, 0, 0, 0])
    assert attacks.dcr_median(shifted, x) == pytest.approx(0.1)


def test_attribute_inference_gain(x: np.ndarray) -> None:
    targets, population = x[:100], x[100:]
    leak = attacks.attribute_inference_gain(targets, targets, population, [0, 1, 2], 5)
    assert leak["attribute_mae_release"] == 0.0
    assert leak["attribute_inference_gain"] == pytest.approx(leak["attribute_mae_population"])
    noise = attacks.attribute_inference_gain(
        pure_noise(6)(targets), targets, population, [0, 1, 2], 5
    )
    assert noise["attribute_inference_gain"] < 0.02


# ------------------------------------------------------------------ every linkage attack


def _toy_proba(x: np.ndarray) -> np.ndarray:
    """A 'target' with a graded score: a logistic function of the first two features."""
    z = 6.0 * (np.asarray(x, np.float64)[:, 0] + 0.5 * np.asarray(x)[:, 1] - 0.75)
    p = 1.0 / (1.0 + np.exp(-z))
    return np.stack([1.0 - p, p], axis=1)


def _eval_data(n: int = 300, d: int = 6):
    from anomigan.privacy.evaluation import EvalData

    rng = np.random.default_rng(2)
    x = rng.random((n, d)).astype(np.float32)
    y = _toy_proba(x).argmax(axis=1)
    cut_val, cut_test = int(0.8 * n), int(0.9 * n)
    return EvalData(x[:cut_val], y[:cut_val], x[cut_test:], y[cut_test:],
                    x[cut_val:cut_test], y[cut_val:cut_test])  # fmt: skip


class _SameClassTrainingRecord:
    """Releases a random training record of the target's predicted class: keeps nothing of
    the record but its class, so every linkage attack must sit at chance."""

    name = "class_only"

    def __init__(self, x_train: np.ndarray):
        self.x_train = x_train
        self.cls = _toy_proba(x_train).argmax(axis=1)

    def anonymize(self, x: np.ndarray, seed: int | None = None) -> np.ndarray:
        rng = np.random.default_rng(seed)
        want = _toy_proba(x).argmax(axis=1)
        out = np.empty_like(np.asarray(x, np.float32))
        for k in np.unique(want):
            pool = self.x_train[self.cls == k]
            rows = np.flatnonzero(want == k)
            out[rows] = pool[rng.integers(0, len(pool), len(rows))]
        return out

    def params(self) -> dict:
        return {}


def test_a_copy_is_linked_by_every_attack():
    from anomigan.method.anonymizers import Identity
    from anomigan.privacy.evaluation import evaluate

    data = _eval_data()
    for split in ("validation", "test"):
        m = evaluate(Identity(), data.on(split), _toy_proba, 200, seed=0, throughput_rows=0)
        for name in attacks.LINKAGE:
            assert m[name] == 1.0, (split, name)
            assert m[f"{name}_ci_low"] < 1.0 == m[f"{name}_ci_high"]
        assert m["reid_rate_worst"] == 1.0
        assert m["score_rank_corr"] == pytest.approx(1.0) and m["score_mae"] == 0.0


def test_a_class_only_sampler_is_linked_at_chance():
    from anomigan.privacy.evaluation import evaluate

    data = _eval_data()
    m = evaluate(_SameClassTrainingRecord(data.x_train), data, _toy_proba, 2000, seed=0,
                 throughput_rows=0)  # fmt: skip
    n = len(data.x_all)
    # chance for an adversary who knows the class is about K/N; the smallest pool (the
    # inversion links among the half of the records it does not know) doubles it
    for name in attacks.LINKAGE:
        assert m[name] < 4 * 2 / n + 0.01, name
        assert m[f"{name}_ci_low"] <= m[name] <= m[f"{name}_ci_high"]
    assert m["prediction_agreement"] == 1.0
    # the class alone sorts the scores into two blocks (a high rank correlation), but within a
    # class the order is lost: well short of a copy's 1.0
    assert m["score_rank_corr"] < 0.9


def test_the_averaging_oracle_cancels_noise_the_single_draw_oracle_does_not():
    x = np.random.default_rng(3).random((300, 6)).astype(np.float32)
    rng = np.random.default_rng(0)

    def noisy(z: np.ndarray) -> np.ndarray:
        return (z + rng.normal(0.0, 0.25, np.shape(z))).astype(np.float32)

    release, src = noisy(x), np.arange(len(x))
    one = attacks.reid_rate_oracle(noisy, release, x, src, np.random.default_rng(1))
    eight = attacks.reid_rate_oracle_multi(noisy, release, x, src, 8, np.random.default_rng(1))
    assert eight > one + 0.1


def test_the_score_adversary_links_by_the_target_output_alone():
    x = np.random.default_rng(4).random((200, 6)).astype(np.float32)
    logits = attacks.target_logits(_toy_proba(x))
    src = np.arange(len(x))
    # a release whose features are noise but whose target score is the record's
    assert attacks.reid_rate_score(logits, logits, src) == 1.0
    # saturated probabilities still differ in logit space
    p = np.array([[1e-9, 1 - 1e-9], [1e-12, 1 - 1e-12], [1e-15, 1 - 1e-15]])
    assert attacks.reid_rate_score(attacks.target_logits(p), attacks.target_logits(p),
                                   np.arange(3)) == 1.0  # fmt: skip
    # the combined adversary uses both views, scaled alike: with the features kept and the
    # scores scrambled it still links, and with both kept it links everything
    assert attacks.reid_rate_score_features(x, logits, x, logits, src) == 1.0
    rng = np.random.default_rng(5)
    near = x + rng.normal(0.0, 0.15, x.shape)  # each view alone links a few records ...
    blurred = logits + rng.normal(0.0, 0.1, logits.shape)
    features_alone = attacks.reid_rate(near, x, src)
    score_alone = attacks.reid_rate_score(blurred, logits, src)
    both = attacks.reid_rate_score_features(near, blurred, x, logits, src)
    assert both > max(features_alone, score_alone) + 0.05  # ... together, more


def test_the_inversion_adversary_links_only_among_records_it_does_not_know():
    x = np.random.default_rng(6).random((100, 4)).astype(np.float32)
    known, targets = np.arange(50), np.arange(50, 100)
    # a release that sits exactly on a known record could fool an adversary who links among
    # every record; one that skips the known ones still links its target
    release = x[targets] + 1e-4
    inv = attacks.reid_rate_inversion(identity, release, x, targets, known, {"none": None})
    assert inv["none"] == 1.0


def test_wilson_interval():
    lo, hi = attacks.wilson(0.5, 100)
    assert lo == pytest.approx(0.404, abs=1e-3) and hi == pytest.approx(0.596, abs=1e-3)
    lo, hi = attacks.wilson(0.0, 57)
    assert lo == 0.0 and hi == pytest.approx(0.063, abs=1e-3)

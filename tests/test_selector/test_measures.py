"""The transferability and dataset-distance measures against values worked out by hand.

Every reference value below is derived in the comments beside it, so that a reader can check
the arithmetic; where a paper states an invariance, it is tested too.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from selector import measures as M

# --- LEEP -------------------------------------------------------------------------------------------


def test_leep_hand_computed():
    # theta (source probabilities over Z = 2 source classes), target labels y = [0, 0, 1, 1]
    theta = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
    y = np.array([0, 0, 1, 1])
    # joint P(y, z) = 1/4 sum over the samples of class y of theta_z:
    #   P(0,0) = (0.8+0.6)/4 = 0.35   P(0,1) = (0.2+0.4)/4 = 0.15
    #   P(1,0) = (0.3+0.1)/4 = 0.10   P(1,1) = (0.7+0.9)/4 = 0.40
    # P(z=0) = 0.45, P(z=1) = 0.55 -> P(0|0) = 7/9, P(1|0) = 2/9, P(0|1) = 3/11, P(1|1) = 8/11
    # EEP per sample: 0.8*7/9 + 0.2*3/11 = 67/99;  0.6*7/9 + 0.4*3/11 = 57/99
    #                 0.3*2/9 + 0.7*8/11 = 57/99;  0.1*2/9 + 0.9*8/11 = 67/99
    # LEEP = mean log = (log(67/99) + log(57/99)) / 2
    expected = 0.5 * (np.log(67 / 99) + np.log(57 / 99))
    assert M.leep(theta, y) == pytest.approx(expected, abs=1e-12)
    # one-hot labels give the same value
    assert M.leep(theta, np.eye(2)[y]) == pytest.approx(expected, abs=1e-12)


def test_leep_perfect_source_is_zero_and_otherwise_negative():
    # a source that predicts a relabelling of the target with certainty: P(y|z) is 0/1 and each
    # sample's EEP is 1, so LEEP = log 1 = 0 (its maximum)
    y = np.array([0, 1, 2, 0, 1, 2])
    theta = np.eye(3)[[2, 0, 1, 2, 0, 1]]          # source class = (y + 2) mod 3
    assert M.leep(theta, y) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    soft = rng.dirichlet(np.ones(4), size=6)
    assert M.leep(soft, y) < 0


def test_leep_validates():
    with pytest.raises(ValueError, match="sum to 1"):
        M.leep(np.array([[0.5, 0.6], [0.5, 0.5]]), [0, 1])
    with pytest.raises(ValueError, match="2 entries"):
        M.leep(np.array([[0.5, 0.5], [0.5, 0.5]]), [0, 1, 1])


# --- NCE --------------------------------------------------------------------------------------------


def test_nce_hand_computed():
    # z = [0, 0, 1, 1], y = [0, 1, 1, 1]: P(0,0) = 1/4, P(1,0) = 1/4, P(1,1) = 1/2
    # P(z=0) = P(z=1) = 1/2 -> P(y|z=0) = 1/2, 1/2 and P(y=1|z=1) = 1
    # -H(Y|Z) = 1/4 log 1/2 + 1/4 log 1/2 + 1/2 log 1 = -1/2 log 2
    assert M.nce([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx(-0.5 * np.log(2), abs=1e-12)


def test_nce_identical_labelings_zero_and_permutation_invariant():
    y = np.array([0, 1, 2, 2, 1, 0, 3])
    assert M.nce(y, y) == 0.0
    assert M.nce((y + 1) % 4 * 10, y) == 0.0       # a renamed copy determines y as well
    z = np.array([0, 0, 1, 1, 0, 1, 1])
    # NCE <= 0 and does not change when the source classes are renamed
    assert M.nce(z, y) < 0
    assert M.nce(1 - z, y) == pytest.approx(M.nce(z, y), abs=1e-12)


# --- H-score ----------------------------------------------------------------------------------------


def test_hscore_hand_computed():
    # f = [0, 2, 4, 6], y = [0, 0, 1, 1]: mean 3, cov(f) = (9+1+1+9)/4 = 5
    # class means 1 and 5 -> E[f|y] = [1, 1, 5, 5], cov = (4+4+4+4)/4 = 4 -> H = 4/5
    f1 = np.array([0.0, 2.0, 4.0, 6.0])
    y = np.array([0, 0, 1, 1])
    assert M.hscore(f1[:, None], y) == pytest.approx(0.8, abs=1e-12)
    # a duplicated feature makes cov(f) = 5 * [[1,1],[1,1]] singular; its pseudo-inverse is
    # [[1,1],[1,1]] / 20, cov(E[f|y]) = 4 * [[1,1],[1,1]] -> tr = (4/20) * tr([[2,2],[2,2]]) = 0.8
    assert M.hscore(np.c_[f1, f1], y) == pytest.approx(0.8, abs=1e-12)
    # a second feature [1, -1, -1, 1]: centred f1 = [-3, -1, 1, 3] is orthogonal to it, so
    # cov(f) = diag(5, 1); its class means are 0 and 0 -> cov(E[f|y]) = diag(4, 0); H = 4/5
    f = np.c_[f1, [1.0, -1.0, -1.0, 1.0]]
    assert M.hscore(f, y) == pytest.approx(0.8, abs=1e-12)
    # shrinkage a = 0.5 (Ibrahim et al.): mu = tr(cov f)/D = 3, cov_a = 0.5*diag(5,1) + 1.5 I
    # = diag(4, 2); H_a = tr(diag(1/4, 1/2) @ 0.5*diag(4, 0)) = 0.5
    assert M.hscore(f, y, shrinkage=0.5) == pytest.approx(0.5, abs=1e-12)
    # no shrinkage is the original H-score
    assert M.hscore(f, y, shrinkage=0.0) == pytest.approx(0.8, abs=1e-12)


def test_hscore_ledoit_wolf_and_invariance():
    from sklearn.covariance import ledoit_wolf_shrinkage

    rng = np.random.default_rng(0)
    f = rng.normal(size=(40, 5))
    y = rng.integers(0, 3, 40)
    f[y == 1] += 2.0
    a = float(ledoit_wolf_shrinkage(f))
    assert 0 < a < 1
    assert M.hscore(f, y, shrinkage="ledoit-wolf") == pytest.approx(M.hscore(f, y, shrinkage=a), rel=1e-12)
    # tr(cov^-1 cov_g) does not change under an invertible linear map of the features
    a_map = rng.normal(size=(5, 5)) + 3 * np.eye(5)
    assert M.hscore(f @ a_map.T, y) == pytest.approx(M.hscore(f, y), rel=1e-8)
    with pytest.raises(ValueError, match="shrinkage"):
        M.hscore(f, y, shrinkage=1.5)
    with pytest.raises(ValueError, match="shrinkage"):
        M.hscore(f, y, shrinkage="oas")


# --- GBC --------------------------------------------------------------------------------------------


def test_gbc_hand_computed_1d():
    # class 0 = [0, 2]: mean 1, variance ((0-1)^2 + (2-1)^2)/2 = 1; class 1 = [4, 6]: mean 5, var 1
    # D_B = 1/8 * (5-1)^2 / 1 + 1/2 log(1 / sqrt(1*1)) = 2;  BC = e^-2
    # GBC sums over ordered pairs (0,1) and (1,0): -2 e^-2
    f = np.array([[0.0], [2.0], [4.0], [6.0]])
    y = [0, 0, 1, 1]
    assert M.gbc(f, y, gaussian="diagonal") == pytest.approx(-2 * np.exp(-2), abs=1e-12)
    assert M.gbc(f, y, gaussian="spherical") == pytest.approx(-2 * np.exp(-2), abs=1e-12)


def test_gbc_hand_computed_2d_diagonal_and_spherical():
    # class 0 = (0,0), (2,2): mean (1,1), variances (1,1)
    # class 1 = (4,1), (6,5): mean (5,3), variances (1,4)
    f = np.array([[0.0, 0.0], [2.0, 2.0], [4.0, 1.0], [6.0, 5.0]])
    y = [0, 0, 1, 1]
    # diagonal: Sigma = diag(1, 2.5); 1/8 (16/1 + 4/2.5) = 17.6/8 = 2.2
    #   1/2 [log 1 + log 2.5 - 1/2 (log 1 + log 1) - 1/2 (log 1 + log 4)] = 1/2 log(2.5/2) = 1/2 log 1.25
    d_diag = 2.2 + 0.5 * np.log(1.25)
    assert M.gbc(f, y, gaussian="diagonal") == pytest.approx(-2 * np.exp(-d_diag), abs=1e-12)
    # spherical: sigma0^2 = mean(1,1) = 1, sigma1^2 = mean(1,4) = 2.5, average 1.75
    #   1/8 * (16 + 4)/1.75 = 20/14;  1/2 [2 log 1.75 - 1/2 * 2 log 1 - 1/2 * 2 log 2.5]
    #   = log 1.75 - 1/2 log 2.5  (D = 2 axes share one variance)
    d_sph = 20 / 14 + np.log(1.75) - 0.5 * np.log(2.5)
    assert M.gbc(f, y, gaussian="spherical") == pytest.approx(-2 * np.exp(-d_sph), abs=1e-12)


def test_gbc_separated_classes_near_zero_and_validation():
    f = np.array([[0.0], [1.0], [1000.0], [1001.0], [-1000.0], [-999.0]])
    assert M.gbc(f, [0, 0, 1, 1, 2, 2]) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="fewer than 2 samples"):
        M.gbc(f, [0, 0, 1, 1, 1, 2])
    with pytest.raises(ValueError, match="gaussian"):
        M.gbc(f, [0, 0, 1, 1, 2, 2], gaussian="full")


# --- LogME ------------------------------------------------------------------------------------------


def _brute_force_evidence(f: np.ndarray, y: np.ndarray) -> float:
    """max over a (log alpha, log beta) grid of log N(t; 0, I/beta + F F^T/alpha) / N, averaged
    over the classes' indicator targets t: the marginal likelihood written in the sample space
    (N x N), not LogME's posterior form in feature space."""
    from scipy.stats import multivariate_normal

    n = len(f)
    grid = 10.0 ** np.linspace(-4, 4, 1601)          # step 10^0.005 in alpha and in beta
    a, b = np.meshgrid(grid, grid, indexing="ij")
    w, q = np.linalg.eigh(f @ f.T)
    best = []
    for k in np.unique(y):
        t = (y == k).astype(float)
        q2 = (q.T @ t) ** 2
        lam = 1 / b[..., None] + np.maximum(w, 0) / a[..., None]   # eigenvalues of the covariance
        ll = -0.5 * n * np.log(2 * np.pi) - 0.5 * np.log(lam).sum(-1) - 0.5 * (q2 / lam).sum(-1)
        i = np.unravel_index(np.argmax(ll), ll.shape)
        # the eigen-form agrees with the density evaluated directly
        cov = np.eye(n) / b[i] + f @ f.T / a[i]
        assert ll[i] == pytest.approx(multivariate_normal(np.zeros(n), cov).logpdf(t), rel=1e-9)
        best.append(ll[i] / n)
    return float(np.mean(best))


@pytest.mark.parametrize("n,d", [(8, 2), (5, 7)])   # N > D and N < D (rank-deficient F^T F)
def test_logme_matches_brute_force_evidence(n, d):
    rng = np.random.default_rng(n * 10 + d)
    f = rng.normal(size=(n, d))
    y = np.arange(n) % 2
    value = M.logme(f, y)
    grid_max = _brute_force_evidence(f, y)
    # the fixed point is the maximum; the grid's best point lies at most a grid step away
    assert value >= grid_max - 1e-9
    assert value - grid_max < 1e-3
    assert M.logme(f, np.eye(2)[y]) == pytest.approx(value, abs=1e-12)


def test_logme_prefers_informative_features_and_is_scale_invariant():
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    noise = rng.normal(size=(60, 4))
    informative = noise + 3 * np.eye(3, 4)[y]
    assert M.logme(informative, y) > M.logme(noise, y)
    # the evidence is maximised over alpha: scaling the features changes nothing
    assert M.logme(10 * informative, y) == pytest.approx(M.logme(informative, y), abs=1e-6)


# --- OTDD -------------------------------------------------------------------------------------------


def test_bures_hand_computed():
    # 1-D: N(1, 1) and N(3, 4): (1-3)^2 + (1-2)^2 = 5
    assert M.bures_wasserstein2([1.0], [[1.0]], [3.0], [[4.0]]) == pytest.approx(5.0, abs=1e-12)
    assert M.bures_wasserstein2([1.0], [1.0], [3.0], [4.0]) == pytest.approx(5.0, abs=1e-12)
    # S1 = [[2,1],[1,2]] (eigenvalues 3, 1 on (1,1), (1,-1)), S2 = [[8,4],[4,8]] (12, 4 on the same
    # axes): commuting, so the Bures term is sum (sqrt(l1) - sqrt(l2))^2 = (sqrt3 - 2 sqrt3)^2 + (1 - 2)^2 = 4
    s1, s2 = np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([[8.0, 4.0], [4.0, 8.0]])
    assert M.bures_wasserstein2([0, 0], s1, [0, 0], s2) == pytest.approx(4.0, abs=1e-9)


def test_bures_against_matrix_square_roots():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    s1, s2 = a @ a.T + 0.1 * np.eye(3), b @ b.T + 0.1 * np.eye(3)
    r1 = sqrtm(s1).real
    expected = 1.0 + np.trace(s1 + s2 - 2 * sqrtm(r1 @ s2 @ r1).real)   # means differ by (1, 0, 0)
    got = M.bures_wasserstein2([1, 0, 0], s1, [0, 0, 0], s2)
    assert got == pytest.approx(expected, rel=1e-8)
    assert M.bures_wasserstein2([0, 0, 0], s2, [1, 0, 0], s1) == pytest.approx(got, rel=1e-8)


def test_otdd_hand_computed_one_class():
    # A = {0, 2} (one class: mean 1, deviation 1), B = {1, 5} (mean 3, deviation 2)
    # W2^2(label A, label B) = (1-3)^2 + (1-2)^2 = 5
    # costs |x-x'|^2 + 5: 0->1: 6, 0->5: 30, 2->1: 6, 2->5: 14
    # plans (uniform, two points each): {0->1, 2->5}: (6+14)/2 = 10; {0->5, 2->1}: (30+6)/2 = 18
    # OT cost 10 -> OTDD = sqrt(10)
    for cov in ("full", "diagonal"):
        assert M.otdd([[0.0], [2.0]], [0, 0], [[1.0], [5.0]], [0, 0], covariance=cov) == pytest.approx(
            np.sqrt(10), abs=1e-12)


def test_otdd_hand_computed_two_classes():
    # A: 0, 2 (class 0: mean 1, dev 1), 10, 12 (class 1: mean 11, dev 1)
    # B: 1, 13 (class 0: mean 7, dev 6), 3, 11 (class 1: mean 7, dev 4)
    # label W2^2: A0-B0 = 6^2 + 5^2 = 61, A0-B1 = 36 + 9 = 45, A1-B0 = 16 + 25 = 41, A1-B1 = 16 + 9 = 25
    # cost rows A (0, 2, 10, 12), columns B (1, 3, 11, 13):
    #   [ 1+61, 9+45, 121+45, 169+61] = [ 62,  54, 166, 230]
    #   [ 1+61, 1+45,  81+45, 121+61] = [ 62,  46, 126, 182]
    #   [81+41, 49+25,  1+25,   9+41] = [122,  74,  26,  50]
    #   [121+41, 81+25, 1+25,   1+41] = [162, 106,  26,  42]
    # with 4 + 4 uniform points an optimal plan is a permutation (Birkhoff); the cheapest is
    # 0->1, 2->3, 10->11, 12->13 (or 0->3, 2->1, same cost): (62+46+26+42)/4 = 44 -> OTDD = sqrt(44)
    xa, ya = np.array([[0.0], [2.0], [10.0], [12.0]]), [0, 0, 1, 1]
    xb, yb = np.array([[1.0], [3.0], [11.0], [13.0]]), [0, 1, 1, 0]
    assert M.otdd(xa, ya, xb, yb) == pytest.approx(np.sqrt(44), abs=1e-12)
    cost = np.array([[62, 54, 166, 230], [62, 46, 126, 182], [122, 74, 26, 50], [162, 106, 26, 42]])
    assert min(sum(cost[i, p[i]] for i in range(4)) for p in itertools.permutations(range(4))) == 176
    # without the label term: the plain 2-Wasserstein distance of the points, every point moves by 1
    assert M.otdd(xa, ya, xb, yb, label_weight=0.0) == pytest.approx(1.0, abs=1e-12)


def test_otdd_zero_on_itself_symmetric_and_label_names_do_not_matter():
    rng = np.random.default_rng(0)
    xa, ya = rng.normal(size=(20, 3)), np.arange(20) % 3
    xb, yb = rng.normal(size=(16, 3)) + 1.0, np.arange(16) % 2
    # diagonal: exactly 0; full: the Bures term of a covariance with itself is 0 up to the
    # rounding of an eigen-decomposition (~1e-15), which the square root lifts to ~1e-8
    assert M.otdd(xa, ya, xa, ya, covariance="diagonal") == 0.0
    assert M.otdd(xa, ya, xa, ya, covariance="full") == pytest.approx(0.0, abs=1e-6)
    for cov in ("full", "diagonal"):
        d_ab = M.otdd(xa, ya, xb, yb, covariance=cov)
        assert d_ab > 0
        assert M.otdd(xb, yb, xa, ya, covariance=cov) == pytest.approx(d_ab, rel=1e-9)
        # the label distance compares feature distributions, not label names
        assert M.otdd(xa, ya, xb, 1 - yb, covariance=cov) == pytest.approx(d_ab, rel=1e-9)
    # the debiased Sinkhorn divergence is 0 on itself and close to the exact value (eps = 0.1 of
    # the mean cost: measured 2.92 against 2.97 exact, 2.96 at eps = 0.05)
    assert M.otdd(xa, ya, xa, ya, method="sinkhorn", eps=0.1) == pytest.approx(0.0, abs=1e-6)
    exact = M.otdd(xa, ya, xb, yb)
    assert M.otdd(xa, ya, xb, yb, method="sinkhorn", eps=0.1) == pytest.approx(exact, rel=0.05)


def test_otdd_validates():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="dataset a: .*fewer than 2 samples"):
        M.otdd(x, [0, 0, 1, 2], x, [0, 0, 1, 1])
    with pytest.raises(ValueError, match="features_a has 2 features, features_b 3"):
        M.otdd(x, [0, 0, 1, 1], np.zeros((4, 3)), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="one-hot"):
        M.otdd(x, np.array([[1, 1], [1, 0], [0, 1], [0, 1]]), x, [0, 0, 1, 1])
    with pytest.raises(ValueError, match="method"):
        M.otdd(x, [0, 0, 1, 1], x, [0, 0, 1, 1], method="greenkhorn")
    with pytest.raises(ValueError, match="NaN"):
        M.otdd(np.full((4, 2), np.nan), [0, 0, 1, 1], x, [0, 0, 1, 1])


# --- linear probe, Task2Vec -------------------------------------------------------------------------


def test_softmax_probe_stationarity_hand_derived():
    # x = [-1, 1] (already standardised), y = [0, 1], penalty l2 = 1. By symmetry b = 0 and
    # W = [[-d/2], [d/2]]; the loss is log(1 + e^-d) + l2 d^2 / 4, stationary where
    # l2 d / 2 = 1 / (1 + e^d)  (d is about 0.675)
    w, b = M.fit_softmax_probe(np.array([[-1.0], [1.0]]), [0, 1], l2=1.0)
    d = w[1, 0] - w[0, 0]
    assert w[0, 0] == pytest.approx(-w[1, 0], abs=1e-6)
    assert np.allclose(b, 0.0, atol=1e-6)
    assert d / 2 == pytest.approx(1 / (1 + np.exp(d)), abs=1e-6)
    assert 0.67 < d < 0.68


def test_probe_fisher_hand_computed():
    # one feature, x = [1, 2]; W = [[ln 2], [0]], b = 0
    # x = 1: logits (ln 2, 0) -> p = (2/3, 1/3), p(1-p) = 2/9, x^2 = 1 -> 2/9
    # x = 2: logits (2 ln 2, 0) -> p = (4/5, 1/5), p(1-p) = 4/25, x^2 = 4 -> 16/25
    # F_k = mean = (2/9 + 16/25)/2 = (50 + 144)/450 = 97/225 for both classes
    fisher = M.probe_fisher_diag([[1.0], [2.0]], [[np.log(2)], [0.0]], [0.0, 0.0])
    assert fisher == pytest.approx(np.array([[97 / 225], [97 / 225]]), abs=1e-12)


def test_probe_fisher_equals_expectation_over_sampled_labels():
    # the closed form equals E_x sum_y p(y|x) (d log p(y|x) / dW)^2 enumerated over y
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)), rng.normal(size=4)
    p = M.softmax(x @ w.T + b)
    expected = np.zeros((4, 3))
    for i in range(5):
        for y in range(4):
            grad = (np.eye(4)[y] - p[i])[:, None] * x[i][None, :]     # d log p(y|x) / dW
            expected += p[i, y] * grad ** 2 / 5
    assert M.probe_fisher_diag(x, w, b) == pytest.approx(expected, abs=1e-12)


def test_task2vec_distance_hand_computed_and_invariances():
    # a = (1, 1), b = (1, 3): a/(a+b) = (1/2, 1/4), b/(a+b) = (1/2, 3/4)
    # cos = (1/4 + 3/16) / (sqrt(1/4 + 1/16) sqrt(1/4 + 9/16)) = (7/16) / (sqrt(5) sqrt(13)/16) = 7/sqrt(65)
    assert M.task2vec_distance([1, 1], [1, 3]) == pytest.approx(1 - 7 / np.sqrt(65), abs=1e-12)
    assert M.task2vec_distance([1, 3], [1, 1]) == pytest.approx(1 - 7 / np.sqrt(65), abs=1e-12)
    e = np.array([0.5, 2.0, 0.0, 1.0])
    assert M.task2vec_distance(e, e) == 0.0
    # proportional embeddings normalise to constant vectors: distance 0
    assert M.task2vec_distance(e, 3 * e) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="non-negative"):
        M.task2vec_distance([1.0, -1.0], [1.0, 1.0])


def test_task2vec_embedding():
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    x = rng.normal(size=(40, 3)) + np.c_[2.0 * y, np.zeros(40), np.zeros(40)]
    e = M.task2vec(x, y)
    assert e.shape == (3,) and np.all(e > 0)
    assert M.task2vec_distance(e, M.task2vec(x, y)) == 0.0
    # renaming the classes gives the same task (up to the optimiser's tolerance)
    assert M.task2vec_distance(e, M.task2vec(x, 1 - y)) < 1e-6
    # one-hot labels are the same labels
    assert M.task2vec(x, np.eye(2)[y]) == pytest.approx(e, rel=1e-9)
    # a task on other features is further away than the task on a resample of the same ones
    x2 = rng.normal(size=(40, 3)) + np.c_[2.0 * y, np.zeros(40), np.zeros(40)]
    other = rng.normal(size=(40, 3)) * np.array([1.0, 3.0, 0.3])
    assert M.task2vec_distance(e, M.task2vec(x2, y)) < M.task2vec_distance(e, M.task2vec(other, y))
    with pytest.raises(ValueError, match="at least 2 classes"):
        M.task2vec(x, np.zeros(40, dtype=int))


def test_label_validation():
    f = np.zeros((3, 2))
    with pytest.raises(ValueError, match="one-hot"):
        M.hscore(f, np.array([[1, 1], [0, 1], [1, 0]]))
    with pytest.raises(ValueError, match="integer class indices"):
        M.hscore(f, np.array([0.5, 1.0, 0.0]))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        M.logme(np.zeros(3), [0, 1, 0])

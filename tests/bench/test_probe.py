"""Converged probes against float64 references solved another way (Newton, normal equations)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biocoreset.bench.probe import fit_logistic, fit_ridge
from biocoreset.errors import ConfigError, InputError


def _data(seed=0, n=60, h=5, c=3):
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, h)) * g.uniform(0.1, 10, size=h) + g.normal(size=h) * 5
    w = g.normal(size=(h, c))
    y = (x / x.std(0) @ w + g.gumbel(size=(n, c))).argmax(1)
    return x, y


def _newton_logistic(x, y, c, l2):
    """Multinomial logistic regression by damped Newton steps on the full Hessian (float64)."""
    z = (x - x.mean(0)) / x.std(0)
    n, h = z.shape
    zb = np.hstack([z, np.ones((n, 1))])
    d = (h + 1) * c
    theta = np.zeros(d)
    onehot = np.eye(c)[y]
    pen = np.zeros((h + 1, c))
    pen[:h] = 1.0
    pen = pen.ravel()

    def parts(th):
        w = th.reshape(h + 1, c)
        logits = zb @ w
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        f = -np.mean(np.log((p * onehot).sum(1))) + l2 * np.sum((w[:h]) ** 2)
        grad = (zb.T @ (p - onehot) / n).ravel() + 2 * l2 * pen * th
        hess = np.zeros((d, d))
        for i in range(n):
            s = np.diag(p[i]) - np.outer(p[i], p[i])
            hess += np.kron(np.outer(zb[i], zb[i]), s) / n
        hess += 2 * l2 * np.diag(pen)
        return f, grad, hess

    for _ in range(100):
        f, grad, hess = parts(theta)
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]  # the bias shift is a null direction
        t = 1.0
        while parts(theta - t * step)[0] > f - 1e-4 * t * grad @ step and t > 1e-8:
            t /= 2
        theta = theta - t * step
        if np.abs(grad).max() < 1e-13:
            break
    return theta.reshape(h + 1, c)


@pytest.mark.parametrize("seed", [0, 1])
def test_logistic_matches_newton_in_float64(seed):
    x, y = _data(seed)
    probe = fit_logistic(torch.tensor(x), y.tolist(), n_classes=3, l2=1e-2)
    ref = _newton_logistic(x, y, 3, 1e-2)
    assert probe.converged
    # the bias of a softmax is defined up to a constant per row: compare centred columns
    got = torch.cat([probe.weight, probe.bias[None]]).numpy()
    got = got - got.mean(1, keepdims=True)
    ref = ref - ref.mean(1, keepdims=True)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-8)


def test_logistic_ignores_row_order_and_predicts_by_argmax():
    x, y = _data(2)
    perm = np.random.default_rng(0).permutation(len(y))
    a = fit_logistic(torch.tensor(x), y.tolist(), n_classes=3)
    b = fit_logistic(torch.tensor(x[perm]), y[perm].tolist(), n_classes=3)
    np.testing.assert_allclose(a.weight.numpy(), b.weight.numpy(), rtol=1e-5, atol=1e-7)
    xt = torch.tensor(_data(3)[0])
    assert a.predict(xt).tolist() == a.decision(xt).argmax(1).tolist()


def test_ridge_matches_normal_equations_in_float64():
    g = np.random.default_rng(4)
    x = g.normal(size=(40, 6)) * 3 + 1
    x[:, 5] = 7.0  # a constant feature: scale 1, no effect
    y = x[:, :5] @ g.normal(size=5) + g.normal(size=40)
    probe = fit_ridge(torch.tensor(x), y.tolist(), l2=0.1)
    sd = x.std(0)
    sd[sd == 0] = 1
    z = (x - x.mean(0)) / sd
    zb = np.hstack([z, np.ones((40, 1))])
    pen = np.diag([0.1] * 6 + [0.0]) * 40
    ref = np.linalg.solve(zb.T @ zb + pen, zb.T @ y)
    np.testing.assert_allclose(probe.weight[:, 0].numpy(), ref[:6], rtol=1e-9, atol=1e-12)
    assert float(probe.bias[0]) == pytest.approx(ref[6], rel=1e-12)
    np.testing.assert_allclose(probe.predict(torch.tensor(x)).numpy(), zb @ ref, rtol=1e-9)


def test_probe_errors():
    x = torch.randn(5, 2)
    with pytest.raises(ConfigError, match="l2"):
        fit_logistic(x, [0, 1, 0, 1, 0], n_classes=2, l2=0)
    with pytest.raises(InputError, match="labels"):
        fit_logistic(x, [0, 1, 0, 1], n_classes=2)
    with pytest.raises(InputError, match=r"\[0, 2\)"):
        fit_logistic(x, [0, 1, 0, 1, 2], n_classes=2)
    with pytest.raises(InputError, match="NaN"):
        fit_ridge(torch.tensor([[0.0], [float("nan")]]), [0.0, 1.0])
    with pytest.raises(InputError, match=">= 2 rows"):
        fit_ridge(torch.zeros(1, 3), [0.0])

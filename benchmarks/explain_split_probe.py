"""Probe for splitting behaviours: does fitting two policies to one behaviour gain held-out
likelihood when the behaviour is one policy (it should not) and when it is two (it should)?

Data: the ``periodic`` generator's roll-out with only the named behaviours (segments of
25-60 steps, 30 episodes of 300 steps). One policy p(a | s) is fitted on 20 episodes; two
policies start from a random half of the segments and take 3 rounds of hard EM (fit, Viterbi
with ``--switch-cost``) on the same episodes. Gain = the two policies' best labelling score
on the other 10 episodes (switch costs included) minus the one policy's, in nats per step.

    python benchmarks/explain_split_probe.py --updates 150 500 1500 --components 1 4
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from lagless.explain.policy_refine import BehaviourPolicies, viterbi
from lagless.explain.synthetic import _periodic
from lagless.explain.vqvae import gaussian_nll_terms

CASES = {"wander alone": [2], "straight alone": [1], "straight+wander": [1, 2], "circle+straight": [0, 1]}


def make(kinds: list[int], seed: int, episodes: int = 30, steps: int = 300):
    rng = np.random.default_rng(seed)
    obs, act, lab, ep = [], [], [], []
    for e in range(episodes):
        labels = np.empty(steps, dtype=np.int64)
        t, b = 0, int(rng.choice(kinds))
        while t < steps:
            n = int(rng.integers(25, 61))
            labels[t:t + n] = b
            t += n
            b = int(rng.choice([k for k in kinds if k != b])) if len(kinds) > 1 else b
        out = _periodic(labels, rng)
        obs.append(out["obs"])
        act.append(out["actions"])
        lab.append(labels)
        ep.append(np.full(steps, e))
    return [np.concatenate(x) for x in (obs, act, lab, ep)]


class MixturePolicies(BehaviourPolicies):
    """p(a | s, b) as a mixture of ``components`` diagonal Gaussians (the package's policies
    are one Gaussian): the same network, a wider output."""

    def __init__(self, obs_dim: int, behaviours: int, components: int):
        # per component: a weight logit, then the mean and log std of the 2-D action
        super().__init__(obs_dim, 5 * components, discrete=True, behaviours=behaviours, hidden=128)
        self.components = components

    def log_prob(self, obs, actions, behaviour):
        out = self.net(torch.cat([obs, F.one_hot(behaviour, self.behaviours).float()], -1))
        out = out.view(len(out), self.components, 5)
        per_component = -gaussian_nll_terms(out[..., 1:], actions[:, None]).sum(-1)
        return torch.logsumexp(out[..., 0].log_softmax(-1) + per_component, -1)


def policies(obs_dim: int, k: int, components: int) -> BehaviourPolicies:
    """The package's Gaussian behaviour policies, or the mixture variant."""
    if components == 1:
        return BehaviourPolicies(obs_dim, 2, discrete=False, behaviours=k, hidden=128)
    return MixturePolicies(obs_dim, k, components)


def fit(S, A, L, k: int, components: int, updates: int, seed: int) -> BehaviourPolicies:
    torch.manual_seed(seed)
    model = policies(S.shape[1], k, components)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    rng = np.random.default_rng(seed)
    for _ in range(updates):
        rows = rng.integers(0, len(S), 256)
        loss = -model.log_prob(S[rows], A[rows], L[rows]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@torch.no_grad()
def scores(model: BehaviourPolicies, S, A) -> np.ndarray:
    return np.stack([model.log_prob(S, A, torch.full((len(S),), b)).numpy() for b in range(model.behaviours)], 1)


def split_gain(kinds: list[int], components: int, updates: int, seed: int, cost: float) -> float:
    o, a, lab, ep = make(kinds, seed)
    S = torch.tensor((o - o.mean(0)) / (o.std(0) + 1e-6), dtype=torch.float32)
    A = torch.tensor((a - a.mean(0)) / a.std(0), dtype=torch.float32)
    train, test = ep < 20, ep >= 20
    one = fit(S[train], A[train], torch.zeros(int(train.sum()), dtype=torch.long), 1, components, updates, seed)
    base = scores(one, S[test], A[test])[:, 0].mean()
    segment = np.r_[0, np.cumsum((np.diff(lab) != 0) | (np.diff(ep) != 0))]
    sub = np.random.default_rng(seed).integers(0, 2, segment.max() + 1)[segment][train]
    for _ in range(3):
        two = fit(S[train], A[train], torch.tensor(sub), 2, components, updates, seed)
        sub = viterbi(scores(two, S[train], A[train]), ep[train], cost)
    sc = scores(two, S[test], A[test])
    best = viterbi(sc, ep[test], cost)
    switches = ((np.diff(best) != 0) & (np.diff(ep[test]) == 0)).sum()
    return float((sc[np.arange(len(best)), best].sum() - cost * switches) / len(best) - base)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", nargs="+", type=int, default=[150, 1500])
    p.add_argument("--components", nargs="+", type=int, default=[1])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--switch-cost", type=float, default=8.0)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = p.parse_args()
    torch.set_num_threads(1)
    for components in args.components:
        for updates in args.updates:
            for case in args.cases:
                gains = [split_gain(CASES[case], components, updates, s, args.switch_cost) for s in args.seeds]
                print(f"components {components}, updates {updates}: {case:16s} held-out gain of a split "
                      + ", ".join(f"{g:+.3f}" for g in gains) + " nats/step", flush=True)


if __name__ == "__main__":
    main()

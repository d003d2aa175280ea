"""GAE and the PPO losses against values worked out by hand."""

import torch

from lagless.realtime.ppo_loss import clipped_policy_loss, gae, value_loss


def test_gae_matches_hand_computation_and_stops_at_episode_ends():
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [1.0], [0.0]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])  # the episode ends after step 1
    next_value = torch.tensor([3.0])
    g, lam = 0.9, 0.5
    adv, ret = gae(rewards, values, dones, next_value, g, lam)
    d2 = 2.0 + g * 3.0 - 0.0
    d1 = 0.0 - 1.0  # no bootstrap through the end
    d0 = 1.0 + g * 1.0 - 0.5
    expected = torch.tensor([[d0 + g * lam * d1], [d1], [d2]])
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + values)


def test_clipped_policy_loss_clips_the_ratio():
    old = torch.log(torch.tensor([0.5, 0.5]))
    new = torch.log(torch.tensor([1.0, 0.25]))  # ratios 2.0 and 0.5
    adv = torch.tensor([1.0, -1.0])
    loss, kl, clipfrac = clipped_policy_loss(new, old, adv, clip_coef=0.2)
    # sample 0: min(2.0, 1.2) * 1 -> 1.2; sample 1: min(0.5 * -1, 0.8 * -1) -> -0.8
    torch.testing.assert_close(loss, -(1.2 - 0.8) / 2 * torch.tensor(1.0))
    assert clipfrac.item() == 1.0 and kl.item() > 0


def test_value_loss_is_half_mse():
    torch.testing.assert_close(value_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0])),
                               torch.tensor(0.5 * (1 + 4) / 2))


def test_act_samples_actions_with_the_policy_probabilities():
    """The Gumbel-max sampler in ``ActorCritic.act``: frequencies and log-probs match softmax."""
    import gymnasium as gym
    from torch import nn

    from lagless.realtime.agent import ActorCritic
    from lagless.realtime.ppo_config import PPOConfig

    logits = torch.tensor([1.0, -0.5, 0.2, 2.0])

    class Fixed(nn.Module):
        layout = None

        def forward(self, x, state, starts):
            return logits.expand(x.shape[0], -1), state

    agent = ActorCritic(PPOConfig(env="CartPole-v1", arch="instant"), gym.spaces.Box(-1, 1, (3,)),
                        gym.spaces.Discrete(4))
    device = agent.actor.device
    agent.actor = Fixed()
    agent.actor.device = device
    torch.manual_seed(0)
    n = 200_000
    action, logprob, _ = agent.act(torch.zeros(n, 3), (), torch.zeros(n, dtype=torch.bool))
    freq = torch.bincount(action, minlength=4).float() / n
    probs = torch.softmax(logits, -1)
    assert torch.allclose(freq, probs, atol=0.005)  # about 4 standard errors at this n
    assert torch.allclose(logprob, torch.log(probs)[action])

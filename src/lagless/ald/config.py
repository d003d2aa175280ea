"""The one config of an ALD run: flags, Python API and ``config.json``."""

from __future__ import annotations

from dataclasses import dataclass

from lagless.config import option
from lagless.errors import LaglessError
from lagless.realtime.architectures import check_architecture
from lagless.realtime.run_config import RLRunConfig

# method -> (the net that acts, the net the PPO policy loss trains, the net whose value is the critic)
METHODS = {
    "ald": ("actor", "learner", "learner"),  # + distillation of the learner into the actor
    "actor": ("actor", "actor", "actor"),  # baseline: the LSTM alone, PPO
    "learner": ("learner", "learner", "learner"),  # baseline: the transformer alone, PPO (it acts)
    "asymmetric": ("actor", "actor", "learner"),  # baseline: LSTM policy, transformer value
}

BACKENDS = ("local", "ray")


@dataclass
class ALDConfig(RLRunConfig):
    """ALD: only the small actor acts; the learner trains with PPO on the actor's data (importance
    ratios against the actor's behaviour log-probabilities); the actor learns by distillation only
    (KL to the learner's policy plus value MSE) from a replay of recent rollouts."""

    env: str = option("lagless/TMaze-v0", "Gymnasium environment id (Discrete actions)", metavar="ID",
                      fixed=True)
    method: str = option("ald", "ald, or a baseline: actor (the LSTM alone, PPO), learner (the transformer "
                                "alone, PPO; it acts), asymmetric (LSTM policy, transformer value)",
                         metavar="NAME", fixed=True)
    arch: str = option("lstm", "actor architecture (the network that acts)", metavar="NAME", fixed=True)
    layers: int = option(2, "actor layers, head included (lstm: 2 = one LSTM layer and the head)",
                         metavar="N", fixed=True)
    hidden: int = option(128, "actor width (LSTM units)", metavar="H", fixed=True)
    learner_arch: str = option("transformer", "learner architecture", metavar="NAME", fixed=True)
    learner_layers: int = option(3, "learner layers (transformer blocks)", metavar="N", fixed=True)
    learner_hidden: int = option(128, "learner width", metavar="H", fixed=True)
    learner_heads: int = option(4, "attention heads of a transformer learner", metavar="N", fixed=True)
    learner_memory: int = option(32, "past steps each transformer layer attends to", metavar="M", fixed=True)
    total_steps: int = option(200_000, "environment steps to train, summed over environments", metavar="S")
    num_envs: int = option(16, "parallel environments (all stepped by the actor)", metavar="E")
    checkpoint_every: int = option(20_000, "agent steps between checkpoints", metavar="S")
    rollout_steps: int = option(64, "steps per environment between learner updates", metavar="N")
    lr: float = option(3e-4, "Adam learning rate of the learner", metavar="LR")
    actor_lr: float = option(1e-3, "Adam learning rate of the actor (distillation)", metavar="LR")
    gamma: float = option(0.99, "discount factor per agent step", metavar="G")
    gae_lambda: float = option(0.95, "GAE lambda", metavar="L")
    update_epochs: int = option(4, "learner passes over each rollout", metavar="N")
    num_minibatches: int = option(4, "minibatches per pass, whole environments each", metavar="N")
    clip_coef: float = option(0.2, "PPO clipping range (ratios against the actor's behaviour policy)",
                              metavar="C")
    ent_coef: float = option(0.01, "entropy bonus of the learner", metavar="C")
    vf_coef: float = option(0.5, "value loss coefficient of the learner", metavar="C")
    max_grad_norm: float = option(0.5, "gradient norm clip (both models)", metavar="N")
    distill_steps_per_rl_step: int = option(1, "actor distillation updates per learner update: the "
                                               "paper's key knob (more gives better sample efficiency)",
                                            metavar="K")
    distill_value_coef: float = option(0.5, "weight of the value MSE in the distillation loss", metavar="C")
    learner_to_actor_kl: float = option(0.1, "weight of the (weaker) KL that pulls the learner toward the "
                                             "actor's behaviour policy; 0 turns it off", metavar="C")
    replay_rollouts: int = option(4, "recent rollouts kept for distillation", metavar="N")
    distill_in_background: bool = option(False, "distil the actor in a second thread (a second core) while "
                                                "the learner takes its PPO epochs; the targets then come from "
                                                "the learner before those epochs, one update older")
    backend: str = option("local", "where the actor steps the environments: local (this process) or ray "
                                   "(--num-actors Ray actors, each with num_envs / num-actors environments)")
    num_actors: int = option(2, "Ray actors (with --backend ray)", metavar="K")
    ray_address: str = option("", "join this Ray cluster (e.g. 10.0.0.5:6379, after 'ray start --head' "
                                  "there); empty: start a local one", metavar="ADDR")

    def learner_options(self) -> dict:
        """Settings only the transformer takes."""
        return ({"heads": self.learner_heads, "memory": self.learner_memory}
                if self.learner_arch == "transformer" else {})

    def validate(self) -> ALDConfig:
        super().validate()
        check_architecture(self.learner_arch)
        if self.method not in METHODS:
            raise LaglessError(f"unknown --method '{self.method}': choose one of {', '.join(METHODS)}")
        for name in ("learner_layers", "learner_hidden", "rollout_steps", "update_epochs",
                     "num_minibatches", "replay_rollouts"):
            if getattr(self, name) < 1:
                raise LaglessError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.distill_steps_per_rl_step < 0 or self.learner_to_actor_kl < 0:
            raise LaglessError("--distill-steps-per-rl-step and --learner-to-actor-kl must be >= 0")
        if self.backend not in BACKENDS:
            raise LaglessError(f"unknown --backend '{self.backend}': choose one of {', '.join(BACKENDS)}")
        if self.num_actors < 1:
            raise LaglessError(f"--num-actors must be >= 1, got {self.num_actors}")
        if self.backend == "ray" and self.num_envs % self.num_actors:
            raise LaglessError(f"--num-envs ({self.num_envs}) must be a multiple of --num-actors "
                               f"({self.num_actors}): each Ray actor steps the same number of environments")
        if self.num_envs % self.num_minibatches:
            raise LaglessError(f"--num-envs ({self.num_envs}) must be a multiple of --num-minibatches "
                               f"({self.num_minibatches}): each minibatch takes whole environments")
        if not (0 < self.gamma <= 1 and 0 <= self.gae_lambda <= 1 and self.lr > 0 and self.actor_lr > 0):
            raise LaglessError("--gamma must be in (0, 1], --gae-lambda in [0, 1], learning rates > 0")
        return self

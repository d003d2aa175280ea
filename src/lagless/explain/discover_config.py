"""Settings of behaviour discovery; one dataclass drives the CLI flags, the API and discover.json."""

from __future__ import annotations

from dataclasses import dataclass

from lagless.config import option
from lagless.errors import LaglessError

MIN_UPDATES = 1500  # what the suite's 12k-step datasets are measured with
MAX_UPDATES = 6000  # keeps 1M steps within 15 minutes on 2 cores
SCALE_FROM_STEPS = 20_000


@dataclass
class DiscoverConfig:
    behaviours: int | None = option(
        None, "number of behaviours to find; default: chosen by the largest eigengap", metavar="K")
    max_behaviours: int = option(10, "most behaviours the eigengap may choose", metavar="K")
    min_behaviour_fraction: float = option(
        0.02, "behaviours with a smaller fraction of the steps are merged into the one they are "
        "most connected to (not when --behaviours is given)", metavar="F")
    similarity_weight: float = option(
        0.2, "weight a of code-vector similarity in the code graph; 1 - a goes to transitions "
        "between consecutive codes", metavar="A")
    transition_lags: int | None = option(
        None, "steps ahead within which two codes count as following each other in the code graph "
        "(1: consecutive steps only; none: half of --window). A code sums a window of steps, so "
        "the codes of one behaviour change with how much of the previous behaviour their window "
        "still holds; linking codes up to half a window apart keeps those in one behaviour",
        metavar="G")
    places: bool = option(
        True, "look for places: regions of the state space that the trajectories keep to until "
        "they jump to another (rooms, levels), from a graph of state clusters; when its eigengap "
        "is clear, behaviours start from the places instead of the code graph, and relabelling "
        "and splitting go on from there (not with --behaviours; --no-places: always the code graph)")
    refine: bool = option(
        True, "refine the graph's behaviours as policies: relabel steps by how well each "
        "behaviour's policy p(a | s, behaviour) explains them, anchored to their codes "
        "(--no-refine: the code graph's labels as they are)")
    split: bool = option(
        True, "after refining, split a behaviour in two when two policies explain its held-out "
        "episodes better than one (see --split-gain; --no-split: keep the graph's number of "
        "behaviours)")
    split_gain: float = option(
        0.1, "held-out log-likelihood (nats per step, switch costs included) a split must gain "
        "over one policy and over its two policies mixed by what the state alone says of the "
        "part, before a behaviour is split", metavar="G")
    switch_cost: float = option(
        8.0, "refinement: log-likelihood (nats) a behaviour switch within an episode must earn",
        metavar="C")
    min_segment_length: int = option(
        5, "runs of one label shorter than this are relabelled as their longer neighbour "
        "within the episode (1: no smoothing)", metavar="S")
    codebook_size: int = option(64, "entries in the VQ-VAE codebook", metavar="N")
    window: int = option(32, "steps per encoder window (its causal context)", metavar="L")
    label_overlap: int | None = option(
        None, "steps of context a labelling window re-reads from the previous window, so that "
        "early steps of a window are coded with history (0: disjoint windows; none: half the "
        "window)", metavar="C")
    horizon: int = option(
        4, "future states the decoder predicts from a step's code and state (1: the next "
        "state only); more makes codes tell apart what the agent goes on to do", metavar="H")
    action_weight: float = option(
        1.0, "weight of predicting the next actions from a step's code and the states they are "
        "taken in (0: off); makes codes carry the policy the agent follows", metavar="W")
    decoder_sees_action: bool = option(
        True, "the next-state decoder also reads the step's own action, so a code need not carry "
        "it and carries how the agent goes on instead")
    state_weight: float = option(
        0.0, "weight of rebuilding the current state from a step's code alone (0: off); makes "
        "codes also carry where the agent is", metavar="W")
    d_model: int = option(64, "transformer width", metavar="D")
    layers: int = option(2, "transformer layers", metavar="N")
    heads: int = option(4, "attention heads", metavar="H")
    code_dim: int = option(32, "size of a code vector", metavar="D")
    updates: int | None = option(
        None, "training updates (each on a batch of random windows); default: 1500, growing with "
        "the square root of the steps past 20,000, at most 6000", metavar="U")
    batch_size: int = option(64, "windows per training batch", metavar="B")
    label_batch_size: int = option(256, "windows per batch when coding every step", metavar="B")
    lr: float = option(1e-3, "Adam learning rate", metavar="LR")
    commitment: float = option(0.25, "weight of the commitment loss", metavar="BETA")
    ema_decay: float = option(0.99, "decay of the EMA codebook", metavar="G")
    threads: int = option(
        1, "torch CPU threads while discovering; the model is small, so one thread is usually "
        "fastest (more threads mostly wait on each other) and leaves other cores free", metavar="T")
    seed: int = option(0, "random seed (discovery is deterministic for a seed)", metavar="X")
    progress: bool = option(True, "show progress bars")
    tensorboard: bool = option(False, "also write TensorBoard events next to metrics.csv")

    def updates_for(self, num_steps: int) -> int:
        """Training updates for a dataset of ``num_steps`` steps: ``updates`` if given, else
        MIN_UPDATES up to 20,000 steps, then growing as the square root of the size, at most
        MAX_UPDATES: a bigger dataset holds more variety to learn, but a fixed count would see
        each of a 1M-step dataset's steps only about three times."""
        if self.updates is not None:
            return self.updates
        scaled = MIN_UPDATES * (max(num_steps, 1) / SCALE_FROM_STEPS) ** 0.5
        return int(min(MAX_UPDATES, max(MIN_UPDATES, round(scaled))))

    def lags(self) -> int:
        """Transition lags of the code graph: ``transition_lags``, or half the window."""
        return self.transition_lags if self.transition_lags is not None else max(1, self.window // 2)

    def validate(self) -> None:
        """Raise LaglessError naming the first setting that cannot work."""
        checks = [
            (self.behaviours is None or self.behaviours >= 1, f"--behaviours must be at least 1 (or left out to use the eigengap), got {self.behaviours}"),
            (self.max_behaviours >= 2, "--max-behaviours must be at least 2"),
            (0.0 <= self.min_behaviour_fraction < 1.0, "--min-behaviour-fraction must be in [0, 1)"),
            (0.0 <= self.similarity_weight <= 1.0, f"--similarity-weight must be in [0, 1], got {self.similarity_weight}"),
            (self.split_gain >= 0.0, f"--split-gain must be at least 0, got {self.split_gain}"),
            (self.switch_cost >= 0.0, f"--switch-cost must be at least 0, got {self.switch_cost}"),
            (self.min_segment_length >= 1, "--min-segment-length must be at least 1"),
            (self.codebook_size >= 2, f"--codebook-size must be at least 2, got {self.codebook_size}"),
            (self.window >= 2, f"--window must be at least 2, got {self.window}"),
            (self.label_overlap is None or 0 <= self.label_overlap < self.window,
             f"--label-overlap must be in [0, window), got {self.label_overlap}"),
            (self.d_model >= 1 and self.heads >= 1 and self.d_model % self.heads == 0,
             "--d-model must be a positive multiple of --heads"),
            (1 <= self.horizon < self.window, f"--horizon must be in [1, window), got {self.horizon}"),
            (self.layers >= 1 and self.code_dim >= 1, "--layers and --code-dim must be at least 1"),
            (self.updates is None or self.updates >= 1, f"--updates must be at least 1, got {self.updates}"),
            (self.transition_lags is None or self.transition_lags >= 1,
             f"--transition-lags must be at least 1, got {self.transition_lags}"),
            (self.action_weight >= 0 and self.state_weight >= 0, "--action-weight and --state-weight must be >= 0"),
            (self.batch_size >= 1 and self.label_batch_size >= 1, "batch sizes must be at least 1"),
            (self.lr > 0 and self.commitment >= 0, "--lr must be positive and --commitment >= 0"),
            (0.0 < self.ema_decay < 1.0, "--ema-decay must be in (0, 1)"),
            (self.threads >= 1, f"--threads must be at least 1, got {self.threads}"),
        ]
        for ok, message in checks:
            if not ok:
                raise LaglessError(message)

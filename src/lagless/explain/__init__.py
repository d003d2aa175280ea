"""Behaviour discovery in recorded trajectories and attribution of an agent's actions to them."""

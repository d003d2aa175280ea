"""Episode datasets: npz and Minari round trips, D4RL names, and one-line errors for bad files."""

import json

import numpy as np
import pytest
from gymnasium import spaces

from lagless.errors import LaglessError
from lagless.explain.datasets import (
    load_dataset,
    load_extras,
    load_npz_extras,
    save_minari,
    save_npz,
    validate,
)
from lagless.explain.episodes import EpisodeData


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def _data(lengths=(3, 5, 2), final=True, obs_dtype=np.uint8, seed=0) -> EpisodeData:
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    ends = np.cumsum(lengths) - 1
    term = np.zeros(n, bool)
    trunc = np.zeros(n, bool)
    term[ends[:-1]] = True
    trunc[ends[-1]] = True
    obs = rng.integers(0, 2, size=(n, 4, 4, 2)).astype(obs_dtype)
    finals = rng.integers(0, 2, size=(len(lengths), 4, 4, 2)).astype(obs_dtype) if final else None
    return EpisodeData(obs, rng.integers(0, 3, n).astype(np.int64), rng.normal(size=n).astype(np.float32),
                       term, trunc, finals, {"env": "Test-v0", "num_actions": 3})


def _assert_same(a: EpisodeData, b: EpisodeData) -> None:
    for name in ("observations", "actions", "rewards", "terminations", "truncations"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    if a.final_observations is None:
        assert b.final_observations is None
    else:
        assert np.array_equal(a.final_observations, b.final_observations)


def test_npz_round_trip_keeps_dtypes_meta_and_extras(tmp_path):
    data = _data(obs_dtype=np.bool_)
    extras = {"policy_probs": np.full((10, 3), 1 / 3, np.float32)}
    path = save_npz(data, tmp_path / "sub" / "d.npz", extras)
    back = load_dataset(path)
    _assert_same(data, back)
    assert back.meta["env"] == "Test-v0" and back.meta["source"] == str(path.resolve())
    assert back.episode_bounds().tolist() == [[0, 3], [3, 8], [8, 10]]
    assert np.array_equal(load_npz_extras(path)["policy_probs"], extras["policy_probs"])
    assert list(load_extras(path)) == ["policy_probs"]
    assert not list(tmp_path.joinpath("sub").glob(".*tmp"))  # atomic write left no temp file


def test_d4rl_names_and_plain_savez_load(tmp_path):
    data = _data(final=False)
    path = tmp_path / "d4rl.npz"
    np.savez(path, observations=data.observations, actions=data.actions.astype(np.float32),
             rewards=data.rewards.astype(np.float64), terminals=data.terminations.astype(np.float32),
             timeouts=data.truncations.astype(np.uint8))
    back = load_dataset(path)
    _assert_same(data, back)  # canonical dtypes: int64 actions, float32 rewards, bool flags
    assert back.final_observations is None and back.meta["source"] == str(path.resolve())


def test_minari_round_trip_by_id_and_folder(tmp_path, minari_root):
    data = _data(obs_dtype=np.bool_)
    extras = {"values": np.arange(10, dtype=np.float32)}
    folder = save_minari(data, "tests/toy/agent-v0", extras=extras)
    assert folder == minari_root / "tests" / "toy" / "agent-v0"
    by_id, by_folder = load_dataset("tests/toy/agent-v0"), load_dataset(folder)
    _assert_same(data, by_id)
    _assert_same(data, by_folder)
    assert by_id.meta["env"] == "Test-v0" and by_id.meta["num_actions"] == 3
    assert np.array_equal(load_extras("tests/toy/agent-v0")["values"], extras["values"])

    import minari  # readable by Minari users: T+1 observations per episode

    episodes = list(minari.load_dataset("tests/toy/agent-v0").iterate_episodes())
    assert [len(e.rewards) for e in episodes] == [3, 5, 2]
    assert episodes[1].observations.shape == (6, 4, 4, 2) and episodes[1].observations.dtype == np.bool_
    assert np.array_equal(episodes[1].observations[-1], data.final_observations[1])


def test_minari_without_final_observations_repeats_last_and_reads_back(tmp_path):
    data = _data(final=False)
    save_minari(data, "toy-v0", data_path=tmp_path / "elsewhere")
    back = load_dataset(tmp_path / "elsewhere" / "toy-v0")
    _assert_same(data, back)  # the repeated observations are dropped again
    meta = json.loads((tmp_path / "elsewhere" / "toy-v0" / "data" / "metadata.json").read_text())
    assert meta["lagless_final_observation_repeated"] is True and "repeated" in meta["description"]


@pytest.mark.filterwarnings("ignore::UserWarning")  # Minari's reminders about missing env specs
def test_minari_dict_observations_are_flattened_and_unflagged_ends_truncated(minari_root):
    import minari
    from minari.data_collector import EpisodeBuffer

    space = spaces.Dict({"a": spaces.Box(-1, 1, (2,), np.float32), "b": spaces.Discrete(3)})
    buffers = [EpisodeBuffer(id=i, observations={"a": np.full((4, 2), i, np.float32), "b": np.array([0, 1, 2, 1])},
                             actions=np.array([0, 1, 0]), rewards=np.ones(3), terminations=np.zeros(3, bool),
                             truncations=np.zeros(3, bool)) for i in range(2)]
    minari.create_dataset_from_buffers("dicty-v0", buffers, observation_space=space,
                                       action_space=spaces.Discrete(2), algorithm_name="test",
                                       author="t", author_email="t", code_permalink="t", description="t")
    data = load_dataset("dicty-v0")
    assert data.observations.shape == (6, 5)  # a (2) + one-hot b (3)
    assert data.observations[1].tolist() == [0, 0, 0, 1, 0]
    assert data.truncations.tolist() == [False, False, True] * 2  # else the episodes would merge
    assert data.episode_bounds().tolist() == [[0, 3], [3, 6]] and data.meta["episodes_cut_short"] == 2


def test_validate_returns_canonical_dtypes():
    data = _data()
    data.terminations = data.terminations.astype(np.int8)
    out = validate(data)
    assert out.terminations.dtype == np.bool_ and out.observations.dtype == np.uint8


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(("case", "message"), [
    ("missing", "has no 'rewards' array (it has: actions, observations, terminations, truncations)"),
    ("lengths", "different lengths (observations=10, actions=10, rewards=9"),
    ("nan", "'observations' has NaN or inf values (first at step 4)"),
    ("empty", "has no steps"),
    ("fractional", "has fractional values"),
    ("negative", "must be >= 0"),
    ("flags", "'terminations' must hold booleans or 0/1"),
    ("final", "'final_observations' has shape (2, 4, 4, 2), expected (3, 4, 4, 2)"),
    ("pickled", "pickled objects"),
    ("meta", "'meta_json' is not valid JSON"),
])
def test_bad_npz_files_raise_one_line(tmp_path, case, message):
    d = _data()
    arrays = {"observations": d.observations, "actions": d.actions, "rewards": d.rewards,
              "terminations": d.terminations, "truncations": d.truncations}
    if case == "missing":
        del arrays["rewards"]
    elif case == "lengths":
        arrays["rewards"] = d.rewards[:-1]
    elif case == "nan":
        arrays["observations"] = d.observations.astype(np.float32)
        arrays["observations"][4, 0, 0, 0] = np.nan
    elif case == "empty":
        arrays = {k: v[:0] for k, v in arrays.items()}
    elif case == "fractional":
        arrays["actions"] = d.actions + 0.5
    elif case == "negative":
        arrays["actions"] = d.actions - 5
    elif case == "flags":
        arrays["terminations"] = d.terminations * 2.0
    elif case == "final":
        arrays["final_observations"] = d.final_observations[:2]
    elif case == "pickled":
        arrays["observations"] = np.array([{"x": 1}] * 10, dtype=object)
    elif case == "meta":
        arrays["meta_json"] = np.asarray("{not json")
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(LaglessError) as err:
        load_dataset(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_corrupt_truncated_and_unknown_sources(tmp_path):
    good = save_npz(_data(), tmp_path / "good.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    for path in (truncated, text):
        with pytest.raises(LaglessError, match=r"not a readable \.npz file|cannot be read"):
            load_dataset(path)
    with pytest.raises(LaglessError, match="neither an existing file or folder nor a local Minari dataset id"):
        load_dataset(tmp_path / "missing.npz")
    with pytest.raises(LaglessError, match=r"looked in .*minari"):
        load_dataset("nobody/nothing-v0")
    with pytest.raises(LaglessError, match="not a Minari dataset"):
        load_dataset(tmp_path)


def test_bad_saves(tmp_path):
    with pytest.raises(LaglessError, match=r"must end in \.npz"):
        save_npz(_data(), tmp_path / "d.h5")
    with pytest.raises(LaglessError, match="extra 'values' has 3 rows"):
        save_npz(_data(), tmp_path / "d.npz", {"values": np.zeros(3)})
    with pytest.raises(LaglessError, match="malformed"):
        save_minari(_data(), "no version")
    save_minari(_data(), "twice-v0")
    with pytest.raises(LaglessError, match="already exists"):
        save_minari(_data(), "twice-v0")

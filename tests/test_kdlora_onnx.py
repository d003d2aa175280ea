"""``kdlora import-onnx``: BERT-family ONNX exports back into transformers folders, checked against
onnxruntime; the packaged paraphrase-MiniLM-L3-v2 as the default KD-LoRA student."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, BertTokenizer

from lagless.cli import main
from lagless.errors import LaglessError
from lagless.kdlora import default_student
from lagless.kdlora.onnx_import import IMPORT_RECORD, import_onnx

VOCAB = 100
TINY = {"vocab_size": VOCAB, "hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 37,
        "max_position_embeddings": 64}
SENTENCES = ["A man is playing a guitar.", "The weather is lovely today, isn't it?",
             "Stocks fell sharply", "two dogs run through a snowy field while a child watches"]


class _Encoder(nn.Module):
    """``BertModel`` called by keyword (transformers 5 takes no positional mask), as exports do."""

    def __init__(self, bert: nn.Module, token_types: bool):
        super().__init__()
        self.bert, self.token_types = bert, token_types

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                        token_type_ids=token_type_ids)
        return out.last_hidden_state, out.pooler_output


def export(module: nn.Module, path, inputs: tuple, names: list[str], outputs: list[str]):
    dynamic = {n: {0: "batch", 1: "sequence"} for n in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, inputs, str(path), input_names=names, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=17, dynamo=False)
    module.eval()  # the exporter leaves the module in training mode (dropout on)
    return path


def tiny_bert(heads: int = 4, randomise: bool = True, seed: int = 0) -> BertModel:
    torch.manual_seed(seed)
    model = BertModel(BertConfig(num_attention_heads=heads, **TINY)).eval()
    if randomise:  # non-zero biases and non-unit norms, so every tensor must land in its place
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.1)
    return model


def tiny_inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    return ids, mask, torch.randint(0, 2, ids.shape, generator=g)


def tiny_tokenizer(folder):
    folder.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(VOCAB - 5)]
    BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(folder)
    return folder


def export_tiny(tmp_path, model: BertModel, token_types: bool = True):
    ids, mask, types = tiny_inputs()
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_types else [])
    args = (ids, mask, types) if token_types else (ids, mask)
    return export(_Encoder(model, token_types), tmp_path / "tiny.onnx", args, names,
                  ["last_hidden_state", "pooler_output"])


@pytest.mark.parametrize("heads,randomise,token_types", [
    (4, True, True), (2, True, False), (8, False, True),  # fresh init: the exporter shares equal tensors
])
def test_tiny_bert_round_trips(tmp_path, heads, randomise, token_types):
    original = tiny_bert(heads, randomise)
    onnx_file = export_tiny(tmp_path, original, token_types)
    result = import_onnx(onnx_file, tmp_path / "out", tokenizer=str(tiny_tokenizer(tmp_path / "tok")))
    assert result.max_abs_diff < 1e-5
    assert result.config["num_attention_heads"] == heads
    assert result.config["num_hidden_layers"] == 2 and result.config["intermediate_size"] == 37
    assert result.config["layer_norm_eps"] == 1e-12 and result.config["hidden_act"] == "gelu"
    assert result.notes == []  # the pooler was exported and mapped too

    rebuilt = AutoModel.from_pretrained(tmp_path / "out").eval()
    ids, mask, types = tiny_inputs(seed=5)
    kwargs = {"input_ids": ids, "attention_mask": mask}
    if token_types:
        kwargs["token_type_ids"] = types
    with torch.no_grad():
        want, got = original(**kwargs), rebuilt(**kwargs)
    keep = mask.bool()
    torch.testing.assert_close(got.last_hidden_state[keep], want.last_hidden_state[keep],
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(got.pooler_output, want.pooler_output, atol=1e-5, rtol=0)
    assert len(AutoTokenizer.from_pretrained(tmp_path / "out")) == VOCAB
    record = json.loads((tmp_path / "out" / IMPORT_RECORD).read_text())
    assert record["max_abs_diff"] == result.max_abs_diff and record["num_attention_heads"] == heads


def test_tokenizer_beside_the_file_or_refused(tmp_path):
    onnx_file = export_tiny(tmp_path, tiny_bert())
    with pytest.raises(LaglessError, match=r"no tokenizer beside it.*pass --tokenizer DIR"):
        import_onnx(onnx_file, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    tiny_tokenizer(tmp_path)  # now beside the ONNX file
    result = import_onnx(onnx_file, tmp_path / "b")
    assert "beside the ONNX file" in result.tokenizer_source


def test_other_families_are_refused(tmp_path):
    mlp = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    mlp_file = export(mlp, tmp_path / "mlp.onnx", (torch.zeros(1, 8),), ["x"], ["y"])
    with pytest.raises(LaglessError, match=r"^\S*mlp.onnx: no '\*embeddings.word_embeddings.weight' "
                                           r"weight in the graph; only BERT-family"):
        import_onnx(mlp_file, tmp_path / "o1")

    from transformers import DistilBertConfig, DistilBertModel, RobertaConfig, RobertaModel

    torch.manual_seed(0)
    distil = DistilBertModel(DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4,
                                              hidden_dim=37, max_position_embeddings=64)).eval()
    ids, mask, _ = tiny_inputs()
    distil_file = export(_Distil(distil), tmp_path / "distil.onnx", (ids, mask),
                         ["input_ids", "attention_mask"], ["last_hidden_state"])
    with pytest.raises(LaglessError, match="no token-type embeddings; the export is not a BERT"):
        import_onnx(distil_file, tmp_path / "o2")

    # RoBERTa has BERT's weight names but counts positions from its padding index: the
    # onnxruntime check, not the names, is what refuses it
    torch.manual_seed(0)
    roberta = RobertaModel(RobertaConfig(num_attention_heads=4, **TINY)).eval()
    roberta_file = export(_Encoder(roberta, False), tmp_path / "roberta.onnx", (ids + 2, mask),
                          ["input_ids", "attention_mask"], ["last_hidden_state", "pooler_output"])
    with pytest.raises(LaglessError, match="differs from onnxruntime by .* not a plain BERT encoder"):
        import_onnx(roberta_file, tmp_path / "o3", tokenizer=str(tiny_tokenizer(tmp_path / "tok")))
    assert not any(p.name.startswith("o") for p in tmp_path.iterdir() if p.is_dir())


class _Distil(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def test_cli_import_onnx(tmp_path, capsys):
    onnx_file = export_tiny(tmp_path, tiny_bert())
    tok = tiny_tokenizer(tmp_path / "tok")
    assert main(["kdlora", "import-onnx", str(onnx_file), "--out", str(tmp_path / "out"),
                 "--tokenizer", str(tok)]) == 0
    out = capsys.readouterr().out
    assert "2 layers, hidden 32, 4 heads" in out and "matches onnxruntime" in out
    assert (tmp_path / "out" / "model.safetensors").is_file()

    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "corrupt.onnx").write_bytes(onnx_file.read_bytes()[:500])
    cases = [("empty.onnx", "is empty"), ("corrupt.onnx", "not a readable ONNX model"),
             ("missing.onnx", "no such file")]
    for name, says in cases:
        assert main(["kdlora", "import-onnx", str(tmp_path / name), "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err
    assert main(["kdlora", "import-onnx", str(onnx_file), "--out", str(tmp_path / "out")]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# --- the packaged paraphrase-MiniLM-L3-v2 (installed with the nlp extra: this must run) ---

@pytest.fixture(scope="module")
def l3_cache(tmp_path_factory):
    """The default student converted once into a temporary cache, shared by the tests below."""
    if default_student.packaged_l3() is None:
        pytest.fail(f"{default_student.L3_PACKAGE} is not installed: pip install -e '.[nlp]'")
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAGLESS_CACHE", str(cache))
        said = []
        folder = default_student.default_student_path(say=said.append)
        assert folder == str(default_student.l3_cache_dir(default_student.packaged_l3()[1]))
    assert folder.startswith(str(cache)) and any("converting" in s for s in said)
    return cache


def test_packaged_l3_matches_onnxruntime(l3_cache, monkeypatch):
    monkeypatch.setenv("LAGLESS_CACHE", str(l3_cache))
    onnx_file, version = default_student.packaged_l3()
    folder = default_student.l3_cache_dir(version)
    record = json.loads((folder / IMPORT_RECORD).read_text())
    assert record["max_abs_diff"] < 1e-5 and record["num_attention_heads"] == 12
    config = json.loads((folder / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (3, 384, 30522)

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(SENTENCES, padding=True, return_tensors="np")
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    feed = {i.name: batch[i.name].astype(np.int64) for i in session.get_inputs()}
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed), strict=True))
    with torch.no_grad():
        hidden = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).last_hidden_state.numpy()
    keep = batch["attention_mask"].astype(bool)
    want = next(v for v in outputs.values() if v.shape == hidden.shape)
    assert np.abs(hidden - want)[keep].max() < 1e-5
    # its sentence embedding (mean over the real tokens) matches the graph's too
    mask = batch["attention_mask"][..., None]
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    embedding = next(v for v in outputs.values() if v.shape == pooled.shape)
    assert np.abs(pooled - embedding).max() < 1e-5


def test_the_cached_student_is_reused(l3_cache, monkeypatch):
    monkeypatch.setenv("LAGLESS_CACHE", str(l3_cache))
    said = []
    folder = default_student.default_student_path(say=said.append)
    assert said == [] and folder.startswith(str(l3_cache))


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("LAGLESS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_student.cache_root() == tmp_path / "xdg" / "lagless"
    monkeypatch.setenv("LAGLESS_CACHE", str(tmp_path / "mine"))
    assert default_student.cache_root() == tmp_path / "mine"


def test_default_student_is_the_l3_and_layers_still_cut(l3_cache, monkeypatch, tmp_path, capsys):
    from lagless.kdlora.build import build_student
    from lagless.kdlora.config import KDLoRAConfig
    from lagless.kdlora.models import default_model_path, load_model
    from lagless.kdlora.tasks import get_task

    monkeypatch.setenv("LAGLESS_CACHE", str(l3_cache))
    teacher, tokenizer = load_model(default_model_path(), num_labels=2)
    task = get_task("sst2")

    def build(**kw):
        config = KDLoRAConfig(method="kd-lora", teacher=str(tmp_path), trim_vocab=False,
                              progress=False, **kw).validate()
        return build_student(config, task, None, tmp_path / str(len(kw)), teacher, tokenizer)

    l3 = build()
    assert l3.name == default_student.L3_NAME and l3.info["student_model"] == l3.name
    assert l3.model.config.num_hidden_layers == 3 and "student_layers" not in l3.info
    assert (tmp_path / "0" / "student_base" / "config.json").is_file()
    cut = build(student_layers="0,2,4")
    assert cut.info["student_layers"] == [0, 2, 4]
    assert not _same(l3.model, cut.model)

    monkeypatch.setattr(default_student, "packaged_l3", lambda: None)
    monkeypatch.setattr(default_student, "_MISSING_NOTED", [])
    capsys.readouterr()
    fallback = build()
    assert fallback.info["student_layers"] == [0, 2, 4]
    assert build().info["student_layers"] == [0, 2, 4]
    assert capsys.readouterr().err.count("student is cut from the teacher instead") == 1  # said once


def _same(a, b) -> bool:
    wa = a.bert.encoder.layer[0].attention.self.query.weight
    wb = b.bert.encoder.layer[0].attention.self.query.weight
    return bool(wa.shape == wb.shape and wa.equal(wb))

"""KD-LoRA models: family names, LoRA placement and merging, layer-subset students, vocabulary trimming."""

from __future__ import annotations

import logging

import huggingface_hub.constants
import pytest
import torch
from torch import nn
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    DebertaConfig,
    DebertaV2Config,
    DistilBertConfig,
    ElectraConfig,
    PreTrainedTokenizerFast,
    RobertaConfig,
    XLMRobertaConfig,
)

from lagless.errors import LaglessError
from lagless.kdlora.lora import (
    LoraSettings,
    apply_lora,
    count_parameters,
    expected_lora_parameters,
    load_adapter,
    merge_lora,
    save_adapter,
)
from lagless.kdlora.models import (
    LORA_TARGETS,
    classifier_module_names,
    default_model_path,
    load_classifier,
    load_model,
    lora_target_modules,
    model_family,
    pooler_names,
    untrained_pooler_names,
)
from lagless.kdlora.student import (
    check_same_family,
    default_student_layers,
    parse_layers,
    student_from_layers,
)
from lagless.kdlora.vocab_trim import trim_vocabulary

SIZE = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4,
        "intermediate_size": 37}


def tiny_config(family: str, num_labels: int = 3):
    if family == "distilbert":
        config = DistilBertConfig(vocab_size=100, dim=32, n_layers=4, n_heads=4, hidden_dim=37)
    else:
        cls = {"bert": BertConfig, "roberta": RobertaConfig, "deberta-v2": DebertaV2Config,
               "deberta": DebertaConfig, "xlm-roberta": XLMRobertaConfig,
               "electra": ElectraConfig}[family]
        config = cls(**SIZE)
    config.num_labels = num_labels
    return config


def tiny_model(family: str, seed: int = 0, num_labels: int = 3):
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(tiny_config(family, num_labels)).eval()


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


IDS = torch.randint(5, 100, (3, 9), generator=torch.Generator().manual_seed(1))
FAMILIES = ["bert", "roberta", "distilbert", "deberta-v2", "deberta"]


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_trains_adapters_and_head_and_merges_exactly(family):
    model = tiny_model(family)
    assert model_family(model) == family
    targets = lora_target_modules(model)
    assert targets == list(LORA_TARGETS[family])
    head = classifier_module_names(model)
    head_params = sum(p.numel() for name in head for p in model.get_submodule(name).parameters())
    base = getattr(model, model.base_model_prefix)
    # a randomly initialised BERT pooler is untrained, so it trains with the head
    pooler_params = sum(p.numel() for p in base.pooler.parameters()) if untrained_pooler_names(model) else 0
    assert bool(pooler_params) == (family == "bert")  # RoBERTa has none; DeBERTa's is in the head
    expected = expected_lora_parameters(model, targets, r=8)
    assert expected > 0
    before = logits(model, IDS)

    peft_model = apply_lora(model, LoraSettings(r=8, alpha=16, dropout=0.05))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert all("lora_" in n or "modules_to_save" in n for n in trainable)  # base frozen
    for name in head:  # every head module has a trainable copy
        assert any(f"{name}.modules_to_save" in n for n in trainable)
    total, n_trainable = count_parameters(peft_model)
    assert n_trainable == expected + head_params + pooler_params
    assert expected_lora_parameters(peft_model, targets, r=8) == expected  # same after injection

    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # B starts at zero, which would make the merge test vacuous
                param.normal_(0.0, 0.5)
    peft_model.eval()
    adapted = logits(peft_model, IDS)
    assert not torch.allclose(adapted, before, atol=1e-4)
    merged = merge_lora(peft_model)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(logits(merged, IDS), adapted, atol=1e-5, rtol=0)
    assert count_parameters(merged)[0] == total - expected


def test_only_an_untrained_pooler_trains():
    model = tiny_model("bert")
    assert untrained_pooler_names(model) == ["pooler"]
    with torch.no_grad():
        model.bert.pooler.dense.bias.fill_(0.01)  # as a checkpoint trained with its pooler has
    assert untrained_pooler_names(model) == []
    peft_model = apply_lora(model, LoraSettings())
    assert not any("pooler" in n for n, p in peft_model.named_parameters() if p.requires_grad)


def test_a_cut_students_trained_pooler_trains_when_asked():
    model = tiny_model("bert")
    with torch.no_grad():
        model.bert.pooler.dense.bias.fill_(0.01)
    peft_model = apply_lora(model, LoraSettings(train_pooler=True))
    assert any("pooler" in n for n, p in peft_model.named_parameters() if p.requires_grad)
    assert pooler_names(tiny_model("distilbert")) == []  # DistilBERT has no pooler


def test_adapter_saves_in_peft_format_and_reloads(tmp_path):
    peft_model = apply_lora(tiny_model("bert"), LoraSettings())
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                param.add_(0.3)
    peft_model.eval()
    save_adapter(peft_model, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    reloaded = load_adapter(tiny_model("bert"), tmp_path / "adapter").eval()
    torch.testing.assert_close(logits(reloaded, IDS), logits(peft_model, IDS), atol=1e-6, rtol=0)
    with pytest.raises(LaglessError, match="no LoRA adapter"):
        load_adapter(tiny_model("bert"), tmp_path)


def test_families_and_target_errors():
    assert model_family(tiny_config("xlm-roberta")) == "roberta"
    electra = tiny_model("electra")
    assert model_family(electra) == "electra"
    with pytest.raises(LaglessError, match="--lora-targets"):
        lora_target_modules(electra)
    assert lora_target_modules(electra, ["query", "value"]) == ["query", "value"]
    with pytest.raises(LaglessError, match="candidates: .*query"):
        lora_target_modules(tiny_model("bert"), ["qurey"])
    with pytest.raises(LaglessError, match="match no linear layer"):
        lora_target_modules(tiny_model("bert"), ["classifier"])  # the head is not a LoRA target
    with pytest.raises(LaglessError):
        LoraSettings(r=0)
    assert LoraSettings(targets="query, value").targets == ("query", "value")


def test_count_parameters_matches_a_hand_count():
    net = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10))
    net[1].weight = net[0].weight  # tied: counted once
    net[0].weight.requires_grad_(False)
    assert count_parameters(net) == (10 * 4 + 10, 10)

    config = BertConfig(**{**SIZE, "num_hidden_layers": 2}, num_labels=3)
    h, i, v = 32, 37, 100
    layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * 2 * h
    embeddings = v * h + config.max_position_embeddings * h + config.type_vocab_size * h + 2 * h
    pooler, classifier = h * h + h, h * 3 + 3
    bert = AutoModelForSequenceClassification.from_config(config)
    expected = embeddings + 2 * layer + pooler + classifier
    assert count_parameters(bert) == (expected, expected)


@pytest.mark.parametrize("family", ["bert", "distilbert", "deberta-v2"])
def test_student_keeps_the_chosen_layers_and_round_trips(family, tmp_path):
    teacher = tiny_model(family)
    student = student_from_layers(teacher, [0, 2])
    assert student.config.num_hidden_layers == 2
    assert teacher.config.num_hidden_layers == 4  # teacher untouched
    t_state, s_state = teacher.state_dict(), student.state_dict()
    moved = [k for k in s_state if ".layer.1." in k]
    assert moved
    for key in moved:
        torch.testing.assert_close(s_state[key], t_state[key.replace(".layer.1.", ".layer.2.")])
    for key in s_state:
        if ".layer." not in key:  # embeddings, pooler, head copied as they are
            torch.testing.assert_close(s_state[key], t_state[key])
    assert not any(".layer.2." in k or ".layer.3." in k for k in s_state)

    student.save_pretrained(tmp_path / "student")
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student").eval()
    assert reloaded.config.num_hidden_layers == 2
    torch.testing.assert_close(logits(reloaded, IDS), logits(student.eval(), IDS))


def test_student_layer_specs():
    assert parse_layers("0, 2,4") == [0, 2, 4]
    assert default_student_layers(6) == [0, 2, 4]
    assert default_student_layers(1) == [0]
    for bad in ("", "0,a", "0,,2", "1.5"):
        with pytest.raises(LaglessError, match="--student-layers"):
            parse_layers(bad)
    teacher = tiny_model("bert")
    with pytest.raises(LaglessError, match=r"--student-layers 0,2,7: the teacher has 4 layers \(0..3\)"):
        student_from_layers(teacher, [0, 2, 7])
    for bad_layers in ([], [2, 0], [1, 1], [-1, 0]):
        with pytest.raises(LaglessError, match="--student-layers"):
            student_from_layers(teacher, bad_layers)
    with pytest.raises(LaglessError, match="merge"):
        student_from_layers(apply_lora(tiny_model("bert"), LoraSettings()), [0])


def test_student_of_another_family_is_refused_or_warned(caplog):
    teacher, other = tiny_model("roberta"), tiny_model("distilbert")
    check_same_family(teacher, student_from_layers(teacher, [1, 3]))
    with pytest.raises(LaglessError, match="student is distilbert but the teacher is roberta.*"
                                           "--allow-other-family"):
        check_same_family(teacher, other)
    with caplog.at_level(logging.WARNING):
        check_same_family(teacher, other, strict=False)
    assert "--allow-other-family" in caplog.text
    bigger = AutoModelForSequenceClassification.from_config(
        RobertaConfig(**{**SIZE, "vocab_size": 120}, num_labels=3))
    with pytest.raises(LaglessError, match="share a tokenizer"):
        check_same_family(teacher, bigger, strict=False)


def test_load_model_errors_are_one_line(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(LaglessError, match="hub is unreachable or has no such model"):
        load_model("no-such-org/no-such-model-lagless", num_labels=2)
    with pytest.raises(LaglessError, match="no config.json"):
        load_model(str(tmp_path), num_labels=2)
    tiny_model("bert", num_labels=2).save_pretrained(tmp_path / "bare")
    with pytest.raises(LaglessError, match="no tokenizer"):
        load_model(str(tmp_path / "bare"), num_labels=2)
    tiny_model("bert").save_pretrained(tmp_path / "three")  # a 3-label head; the task has 2
    with caplog.at_level(logging.WARNING):
        model = load_classifier(str(tmp_path / "three"), num_labels=2)
    assert model.config.num_labels == 2 and "new head" in caplog.text


# --- vocabulary trimming on the real MiniLM (shipped offline) ---

TEXTS = [
    "The movie was surprisingly good, and the acting superb!",
    ("A man is playing a guitar.", "Someone plays music in a café."),
    "unbelievably boring: two hours of nothing",
]


@pytest.fixture(scope="module")
def minilm():
    model, tokenizer = load_model(default_model_path(), num_labels=2, label_names=["neg", "pos"])
    return model.eval(), tokenizer


def encode(tokenizer, item):
    pair = (item,) if isinstance(item, str) else item
    return tokenizer(*pair, return_tensors="pt")


def tokens_and_logits(model, tokenizer, item):
    enc = encode(tokenizer, item)
    with torch.no_grad():
        out = model(**enc).logits
    return tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist()), out


def test_trimmed_vocabulary_gives_same_tokens_and_logits(minilm, tmp_path):
    model, tokenizer = minilm
    assert model.config.id2label == {0: "neg", 1: "pos"}
    trimmed, small_tok, info = trim_vocabulary(model, tokenizer, TEXTS, progress=False)
    assert info["original"] == 30522
    assert info["kept"] == len(small_tok) == trimmed.config.vocab_size < 5000
    assert info["unk_rate_on_texts"] == 0.0 and info["texts"] == 3
    assert count_parameters(trimmed)[0] < count_parameters(model)[0] - 10_000_000
    assert model.config.vocab_size == 30522  # the original is unchanged

    trimmed.save_pretrained(tmp_path / "small")
    small_tok.save_pretrained(tmp_path / "small")
    reloaded, reloaded_tok = load_model(str(tmp_path / "small"), num_labels=2)
    reloaded.eval()
    for item in TEXTS:
        tokens, expected = tokens_and_logits(model, tokenizer, item)
        for m, t in ((trimmed, small_tok), (reloaded, reloaded_tok)):
            got_tokens, got = tokens_and_logits(m, t, item)
            assert got_tokens == tokens
            torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)

    unseen, _ = tokens_and_logits(trimmed, small_tok, "zyxquokka glorp")
    assert "[UNK]" not in unseen and unseen[0] == "[CLS]"  # falls back to characters
    no_chars, no_chars_tok, _ = trim_vocabulary(model, tokenizer, TEXTS, keep_single_chars=False,
                                                progress=False)
    assert len(no_chars_tok) < len(small_tok)
    assert tokens_and_logits(no_chars, no_chars_tok, "zyxquokka")[0] == ["[CLS]", "[UNK]", "[SEP]"]


def test_trimming_refuses_other_tokenizers_and_no_texts(minilm):
    from tokenizers import Tokenizer
    from tokenizers.models import BPE

    model, tokenizer = minilm
    bpe = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(BPE(unk_token="<unk>")),
                                  unk_token="<unk>")
    with pytest.raises(LaglessError, match="WordPiece"):
        trim_vocabulary(model, bpe, TEXTS, progress=False)
    with pytest.raises(LaglessError, match="training texts"):
        trim_vocabulary(model, tokenizer, [], progress=False)
    with pytest.raises(LaglessError, match="expected strings"):
        trim_vocabulary(model, tokenizer, [("a", 3)], progress=False)


def test_default_l3_student_on_sentence_pairs_gets_a_warning():
    from lagless.kdlora.build import pair_task_advice
    from lagless.kdlora.config import KDLoRAConfig
    from lagless.kdlora.tasks import TASKS

    advice = pair_task_advice(KDLoRAConfig(task="stsb"), TASKS["stsb"])
    assert advice is not None and "--student-layers 0,2,4" in advice and "\n" not in advice
    assert pair_task_advice(KDLoRAConfig(task="sst2"), TASKS["sst2"]) is None  # single sentences
    named = KDLoRAConfig(task="rte", student_model="some/other-student")
    assert pair_task_advice(named, TASKS["rte"]) is None  # the user chose the student

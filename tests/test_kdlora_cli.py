"""Smoke runs of ``lagless kdlora`` on 64 local SST-2 examples with the bundled MiniLM, and bad input."""

import json

import pytest

from lagless.cli import main

TINY = ["--task", "sst2", "--train-limit", "64", "--dev-limit", "32", "--epochs", "1",
        "--batch-size", "16", "--max-length", "32", "--latency-repeats", "2", "--no-progress",
        "--student-layers", "0,2,4"]  # the cut student (the default L3 is tested in test_kdlora_onnx)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    out = tmp_path_factory.mktemp("kdlora") / "run"
    assert main(["kdlora", "run", *TINY, "--run-dir", str(out)]) == 0
    return out


def test_run_writes_every_artefact(pipeline):
    records = json.loads((pipeline / "comparison.json").read_text())
    assert [r["method"] for r in records] == ["fft", "lora", "kd-lora"]
    fields = {"task", "method", "model", "metric", "score", "total_params", "trainable_params",
              "peak_train_mem_mb", "latency_ms_b32", "seed"}
    for r in records:
        assert fields <= set(r), fields - set(r)
        assert 0.0 <= r["score"] <= 1.0 and r["peak_train_mem_mb"] > 0 and r["latency_ms_b32"] > 0
    teacher, lora, student = records
    assert teacher["trainable_params"] == teacher["total_params"]
    assert lora["trainable_params"] < teacher["total_params"] / 100
    assert lora["total_params"] == teacher["total_params"]  # merged: LoRA adds nothing at inference
    assert student["total_params"] < 0.6 * teacher["total_params"]  # 3 of 6 layers, trimmed vocab
    assert student["student_layers"] == [0, 2, 4]
    for step in ("lora", "kd-lora"):
        assert (pipeline / step / "adapter" / "adapter_config.json").is_file()
        assert (pipeline / step / "adapter" / "adapter_model.safetensors").is_file()
        assert (pipeline / step / "merged" / "config.json").is_file()
    assert (pipeline / "teacher" / "model" / "config.json").is_file()
    assert (pipeline / "kd-lora" / "teacher_logits.safetensors").is_file()
    assert (pipeline / "comparison.png").stat().st_size > 0
    assert "kd-lora vs lora" in (pipeline / "comparison.md").read_text()


def test_run_again_reuses_finished_steps(pipeline, capsys):
    assert main(["kdlora", "run", *TINY, "--run-dir", str(pipeline)]) == 0
    assert capsys.readouterr().out.count("reusing the finished run") == 3


def test_predict(pipeline, capsys):
    assert main(["kdlora", "predict", str(pipeline / "kd-lora"), "a warm and wonderful film"]) == 0
    out = capsys.readouterr().out
    assert out.split(" ")[0] in ("negative", "positive") and "(negative 0." in out
    assert main(["kdlora", "predict", str(pipeline / "kd-lora"), "one", "two"]) == 2
    assert "classifies one sentence" in capsys.readouterr().err


def _fails(capsys, *argv, says):
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err


def test_kd_lora_needs_a_finished_fft_teacher(pipeline, tmp_path, capsys):
    _fails(capsys, "kdlora", "train", "--method", "kd-lora", *TINY, "--run-dir", str(tmp_path / "a"),
           says="needs a teacher")
    _fails(capsys, "kdlora", "train", "--method", "kd-lora", *TINY, "--run-dir", str(tmp_path / "b"),
           "--teacher", str(pipeline / "lora"), says="needs an fft teacher")


def test_student_layers_beyond_the_teacher(pipeline, tmp_path, capsys):
    _fails(capsys, "kdlora", "train", "--method", "kd-lora", *TINY, "--teacher", str(pipeline / "teacher"),
           "--student-layers", "0,2,9", "--run-dir", str(tmp_path / "s"), says="6 layers")


def test_student_of_another_family(pipeline, tmp_path, capsys):
    from transformers import RobertaConfig, RobertaForSequenceClassification

    from lagless.kdlora.models import quiet_transformers

    other = tmp_path / "roberta"
    with quiet_transformers():
        RobertaForSequenceClassification(RobertaConfig(
            vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=16)).save_pretrained(other)
    teacher_model = pipeline / "teacher" / "model"
    for name in ("tokenizer.json", "tokenizer_config.json"):  # any tokenizer lets it load
        (other / name).write_text((teacher_model / name).read_text())
    _fails(capsys, "kdlora", "train", "--method", "kd-lora", *TINY, "--teacher", str(pipeline / "teacher"),
           "--student-model", str(other), "--run-dir", str(tmp_path / "r"), says="family")


def test_bad_input(tmp_path, capsys):
    _fails(capsys, "kdlora", "run", "--task", "sst3", says="unknown task")
    table = tmp_path / "t.csv"
    table.write_text("text,target\nfine,1\n")
    _fails(capsys, "kdlora", "train", "--method", "fft", "--task", "sst2", "--data", str(table),
           "--no-progress", "--run-dir", str(tmp_path / "c"), says="sentence")
    table.write_text("sentence,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(20)) + "bad,3\n")
    _fails(capsys, "kdlora", "train", "--method", "fft", "--task", "sst2", "--data", str(table),
           "--no-progress", "--run-dir", str(tmp_path / "d"), says="3")
    _fails(capsys, "kdlora", "train", "--method", "nope", says="unknown method")
    _fails(capsys, "kdlora", "predict", str(tmp_path), "text", says="not a kdlora run folder")


def _layer_weight(model, index):
    return model.bert.encoder.layer[index].attention.self.query.weight


def test_student_starts_from_the_fine_tuned_teachers_layers(pipeline):
    from lagless.kdlora.models import default_model_path, load_model

    student, _ = load_model(str(pipeline / "kd-lora" / "student_base"), num_labels=2)
    teacher, _ = load_model(str(pipeline / "teacher" / "model"), num_labels=2)
    base, _ = load_model(default_model_path(), num_labels=2)
    for new, old in enumerate([0, 2, 4]):  # the default: every other layer, from the teacher
        assert _layer_weight(student, new).equal(_layer_weight(teacher, old))
    assert not _layer_weight(student, 1).equal(_layer_weight(base, 2))  # the teacher was trained
    assert student.classifier.weight.equal(teacher.classifier.weight)  # head included


def test_student_from_the_pretrained_base(pipeline, tmp_path):
    from lagless.kdlora.build import build_student
    from lagless.kdlora.config import KDLoRAConfig
    from lagless.kdlora.models import default_model_path, load_model
    from lagless.kdlora.task_data import load_task_data

    config = KDLoRAConfig(method="kd-lora", teacher=str(pipeline / "teacher"), train_limit=64,
                          student_init="base", trim_vocab=False, progress=False).validate()
    teacher, tokenizer = load_model(str(pipeline / "teacher" / "model"), num_labels=2)
    data = load_task_data(config)
    built = build_student(config, data.task, data.train, tmp_path, teacher, tokenizer)
    base, _ = load_model(default_model_path(), num_labels=2)
    assert _layer_weight(built.model, 2).equal(_layer_weight(base, 4))
    assert built.info["student_init"] == "base" and "fine-tuned" not in built.name


def test_unknown_student_init(tmp_path, capsys):
    _fails(capsys, "kdlora", "train", "--method", "kd-lora", *TINY, "--teacher", str(tmp_path),
           "--student-init", "scratch", "--run-dir", str(tmp_path / "u"), says="--student-init")

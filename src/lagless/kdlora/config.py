"""The one config of a KD-LoRA step (teacher, LoRA baseline or student): flags, API, ``config.json``.

Defaults follow the KD-LoRA paper (Azimi et al. 2024, arXiv 2410.20777): LoRA r 8, alpha 16,
dropout 0.05 on the query and value projections, lr 5e-4, batch 32, weight decay 0.01,
temperature 2 and alpha 0.5 for distillation.
"""

from __future__ import annotations

from dataclasses import dataclass

from lagless.config import option
from lagless.errors import LaglessError

METHODS = ("fft", "lora", "kd-lora")
STUDENT_INITS = ("teacher", "base")
DEFAULT_LR = {"fft": 5e-5, "lora": 5e-4, "kd-lora": 5e-4}


@dataclass
class KDLoRAConfig:
    """One training step of the KD-LoRA pipeline on one task."""

    task: str = option("sst2", "GLUE task: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli",
                       metavar="TASK")
    method: str = option("kd-lora", "fft (full fine-tuning, the teacher), lora (LoRA on the same "
                                    "model) or kd-lora (LoRA student distilled from a teacher)",
                         metavar="METHOD")
    data: str | None = option(None, "GLUE folder (layout of ../shared/data/glue) or a CSV/TSV/JSONL "
                                    "file (default: the local GLUE files when present, else the "
                                    "Hugging Face hub)", metavar="PATH")
    dev_data: str | None = option(None, "separate dev file when --data is a single file; "
                                        "without it, 10%% of that file is held out", metavar="FILE")
    text_columns: str | None = option(None, "comma-separated text columns of a CSV/TSV/JSONL file "
                                            "(or of every file of a GLUE folder)", metavar="A[,B]")
    label_column: str | None = option(None, "label column of a CSV/TSV/JSONL file (or of every "
                                            "file of a GLUE folder)", metavar="NAME")
    model: str | None = option(None, "teacher / base model: a Hugging Face id or a local folder "
                                     "(default: the bundled all-MiniLM-L6-v2)", metavar="ID|DIR")
    teacher: str | None = option(None, "run folder of an 'fft' step, the KD teacher (kd-lora only)",
                                 metavar="DIR")
    student_model: str | None = option(None, "the student's own pretrained model; default: "
                                             "paraphrase-MiniLM-L3-v2 (converted from its ONNX "
                                             "package, cached) for the bundled teacher, else keep "
                                             "--student-layers of --model", metavar="ID|DIR")
    student_layers: str | None = option(None, "cut the student from the teacher, keeping these "
                                              "layers, e.g. 0,2,4 (every other layer when the "
                                              "student is cut by default)", metavar="L,L,..")
    student_init: str = option("teacher", "where a cut student's layers come from: teacher (the "
                                          "fine-tuned teacher's weights, head included) or base "
                                          "(the pretrained --model)", metavar="FROM")
    allow_other_family: bool = option(False, "let the student be of another family than the teacher")
    trim_vocab: bool = option(True, "kd-lora: keep only the student's vocabulary rows that the "
                                    "task's training texts use (plus single characters)")
    max_length: int = option(128, "longest input in tokens; longer ones are truncated", metavar="N")
    train_limit: int | None = option(None, "use a seeded random subsample of this many training "
                                           "examples", metavar="N")
    dev_limit: int | None = option(None, "evaluate on a seeded subsample of this many dev examples",
                                   metavar="N")
    epochs: float = option(3.0, "passes over the training data", metavar="E")
    batch_size: int = option(32, "examples per step", metavar="B")
    lr: float | None = option(None, "AdamW learning rate (default: 5e-5 for fft, 5e-4 for LoRA)",
                              metavar="LR")
    weight_decay: float = option(0.01, "AdamW weight decay", metavar="W")
    warmup: float = option(0.06, "fraction of steps with a linear learning-rate warm-up", metavar="F")
    lora_r: int = option(8, "LoRA rank", metavar="R")
    lora_alpha: int = option(16, "LoRA scaling alpha", metavar="A")
    lora_dropout: float = option(0.05, "dropout on the LoRA input", metavar="P")
    lora_targets: str | None = option(None, "comma-separated module names for LoRA (default: the "
                                            "family's query and value projections)", metavar="NAMES")
    temperature: float = option(2.0, "KD softmax temperature", metavar="T")
    alpha: float = option(0.5, "KD weight; 1 - alpha weighs the task loss", metavar="A")
    efficiency: bool = option(True, "measure parameters, peak training memory, latency and size")
    latency_repeats: int = option(20, "timed batches for the latency median", metavar="N")
    seed: int = option(0, "random seed (subsamples, shuffling, LoRA and head initialisation)",
                       metavar="X")
    device: str = option("auto", "cpu, cuda or auto", metavar="DEV")
    threads: int = option(0, "torch CPU threads (0: torch's default)", metavar="N")
    run_dir: str = option("", "output folder (default: runs/kdlora-<task>-<method>-s<seed>)",
                          metavar="DIR")
    progress: bool = option(True, "show progress bars")

    def validate(self) -> KDLoRAConfig:
        from lagless.kdlora.tasks import get_task

        get_task(self.task)
        if self.method not in METHODS:
            raise LaglessError(f"unknown method '{self.method}': choose one of {', '.join(METHODS)}")
        if self.method == "kd-lora" and not self.teacher:
            raise LaglessError("kd-lora needs a teacher: pass --teacher DIR (the run folder of an "
                               "'fft' step), or use 'lagless kdlora run' for the whole pipeline")
        for name in ("max_length", "batch_size", "lora_r", "lora_alpha", "latency_repeats"):
            if getattr(self, name) < 1:
                raise LaglessError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("train_limit", "dev_limit"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise LaglessError(f"--{name.replace('_', '-')} must be >= 2, got {value}")
        if self.epochs <= 0 or (self.lr is not None and self.lr <= 0) or self.temperature <= 0:
            raise LaglessError("--epochs, --lr and --temperature must be > 0")
        if not 0 <= self.alpha <= 1 or not 0 <= self.lora_dropout < 1 or not 0 <= self.warmup < 1:
            raise LaglessError("--alpha must be in [0, 1], --lora-dropout and --warmup in [0, 1)")
        if self.student_init not in STUDENT_INITS:
            raise LaglessError(f"--student-init must be one of {', '.join(STUDENT_INITS)}, "
                               f"got '{self.student_init}'")
        if self.device not in ("auto", "cpu", "cuda"):
            raise LaglessError(f"--device must be cpu, cuda or auto, got '{self.device}'")
        return self

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]

    def split_names(self, text: str | None) -> list[str] | None:
        return [s.strip() for s in text.split(",") if s.strip()] if text else None

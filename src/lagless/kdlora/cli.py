"""``lagless kdlora run | train | predict | import-onnx``: the KD-LoRA pipeline on GLUE-style text tasks.

transformers and PEFT are imported inside the commands: the parser is built on every call.
"""

from __future__ import annotations

import argparse
import os

from lagless.config import add_config_arguments, build_config, load_config_json

FORMATTER = argparse.ArgumentDefaultsHelpFormatter


def add_parser(sub) -> None:
    from lagless.kdlora.config import KDLoRAConfig

    p = sub.add_parser("kdlora", help="KD-LoRA: a small LoRA student distilled from a fine-tuned teacher",
                       description="KD-LoRA on GLUE-style tasks: a fully fine-tuned teacher, a LoRA "
                                   "baseline on the same model, and a smaller LoRA student trained "
                                   "with knowledge distillation from the teacher.")
    ksub = p.add_subparsers(dest="kdlora_command", metavar="STEP", parser_class=type(p))
    ksub.required = True

    run = ksub.add_parser("run", help="teacher, LoRA and KD-LoRA on one task, then a comparison table",
                          description="Train the teacher (fft), the LoRA baseline and the KD-LoRA "
                                      "student on --task, each in OUT/<step>, and write "
                                      "OUT/comparison.{md,json,png}. A finished step is reused when "
                                      "its settings and data match; otherwise it is trained again.",
                          formatter_class=FORMATTER)
    run.add_argument("--config", metavar="FILE.json", help="load options from a JSON config")
    add_config_arguments(run, KDLoRAConfig, exclude=("method", "teacher"))
    run.set_defaults(func=_cmd_run)

    train = ksub.add_parser("train", help="one step alone: --method fft, lora or kd-lora",
                            description="Train one method on one task. kd-lora needs --teacher, the "
                                        "run folder of an fft step.", formatter_class=FORMATTER)
    train.add_argument("--config", metavar="FILE.json", help="load options from a JSON config")
    add_config_arguments(train, KDLoRAConfig)
    train.set_defaults(func=_cmd_train)

    pred = ksub.add_parser("predict", help="label a sentence (or a pair) with a trained step",
                           description="Print the label and probabilities (or the score, for a "
                                       "regression task) that a trained run gives the input.")
    pred.add_argument("run_dir", metavar="DIR", help="a run folder of 'kdlora train' or a step of 'run'")
    pred.add_argument("text", metavar="SENTENCE", help="the sentence")
    pred.add_argument("text_b", metavar="SECOND", nargs="?", help="the second sentence, for pair tasks")
    pred.set_defaults(func=_cmd_predict)

    imp = ksub.add_parser("import-onnx", help="convert a BERT-family ONNX export into a transformers folder",
                          description="Rebuild the BERT-family encoder in an ONNX file as a transformers "
                                      "folder (config.json, model.safetensors, tokenizer), checked "
                                      "against onnxruntime before anything is written.")
    imp.add_argument("onnx_file", metavar="FILE", help="the .onnx file")
    imp.add_argument("--out", required=True, metavar="DIR", help="new folder to write")
    imp.add_argument("--tokenizer", metavar="DIR", help="folder with the model's tokenizer (default: "
                     "tokenizer files beside FILE, else the bundled MiniLM's when the vocabularies "
                     "have the same size)")
    imp.add_argument("--tolerance", type=float, metavar="T",
                     help="largest max-abs difference from onnxruntime's hidden states accepted "
                          "(default: 1e-4)")
    imp.set_defaults(func=_cmd_import_onnx)


def _config(args):
    from lagless.kdlora.config import KDLoRAConfig

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    base = load_config_json(args.config, KDLoRAConfig) if args.config else None
    return build_config(KDLoRAConfig, args, base)


def _cmd_run(args) -> int:
    from lagless.kdlora.comparison import comparison_table
    from lagless.kdlora.pipeline import default_pipeline_dir, run_pipeline

    config = _config(args)
    config.method, config.teacher = "fft", None  # validated per step by the pipeline
    config.validate()
    config.run_dir = config.run_dir or str(default_pipeline_dir(config))
    records = run_pipeline(config, say=lambda s: print(s, flush=True))
    print(comparison_table(records))
    print(f"written to {config.run_dir}/comparison.md, .json and .png")
    return 0


def _cmd_train(args) -> int:
    from lagless.kdlora.step import default_run_dir, run_step

    config = _config(args).validate()
    config.run_dir = config.run_dir or str(default_run_dir(config))
    print(f"training {config.method} on {config.task}; run folder {config.run_dir}", flush=True)
    r = run_step(config)
    extra = "".join(f", {k} {r[k]:.1f}" for k in ("peak_train_mem_mb", "latency_ms_b32") if k in r)
    print(f"done: dev {r['metric']} {r['score']:.4f}, {r['total_params'] / 1e6:.2f}M parameters "
          f"({r['trainable_params'] / 1e6:.3f}M trained){extra}; written to {config.run_dir}")
    return 0


def _cmd_predict(args) -> int:
    from lagless.kdlora.predict import predict

    out = predict(args.run_dir, args.text, args.text_b)
    if "score" in out:
        print(f"{out['task']} score: {out['score']:.3f}")
    else:
        probs = ", ".join(f"{k} {v:.3f}" for k, v in out["probabilities"].items())
        print(f"{out['label']} ({probs})")
    return 0


def _cmd_import_onnx(args) -> int:
    from lagless.kdlora.onnx_import import DEFAULT_TOLERANCE, import_onnx

    tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    r = import_onnx(args.onnx_file, args.out, tokenizer=args.tokenizer, tolerance=tolerance)
    c = r.config
    print(f"{c['num_hidden_layers']} layers, hidden {c['hidden_size']}, {c['num_attention_heads']} heads, "
          f"intermediate {c['intermediate_size']}, vocabulary {c['vocab_size']:,}; matches onnxruntime "
          f"to {r.max_abs_diff:.1e} (max abs difference, output {r.output_name!r})")
    print(f"tokenizer: {r.tokenizer_source}")
    for note in r.notes:
        print(f"note: {note}")
    print(f"written to {r.out_dir}")
    return 0

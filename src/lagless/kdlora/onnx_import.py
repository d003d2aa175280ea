"""Convert a BERT-family ONNX export into a transformers folder (config, safetensors, tokenizer).

An ONNX export keeps every weight as a graph initializer, but not always under its transformers
name: ``torch.onnx.export`` folds each ``nn.Linear`` weight into a transposed, anonymous constant
(``onnx::MatMul_470``) that feeds a ``MatMul``, whose output meets the layer's bias, which keeps
its name, in an ``Add``. So each projection is found from its bias: bias -> ``Add`` -> ``MatMul``
-> weight (transposed back to ``nn.Linear``'s layout); a weight that kept its name is taken as it
is. Identical tensors may be stored once and aliased with ``Identity`` nodes, which are followed.

The rest of the config comes from the weights (layers, hidden and intermediate size, vocabulary,
positions, token types) and the graph (layer-norm epsilon, activation). The number of attention
heads changes no weight shape: the candidates the graph's constants suggest are tried in turn,
and the one whose rebuilt ``BertModel`` reproduces onnxruntime's hidden states is kept. Nothing is
written unless that check passes; a graph that cannot be mapped is refused with one line.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lagless.errors import LaglessError

DEFAULT_TOLERANCE = 1e-4
IMPORT_RECORD = "lagless_import.json"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_PROJECTIONS = ("attention.self.query", "attention.self.key", "attention.self.value",
                "attention.output.dense", "intermediate.dense", "output.dense")
_LAYER_NORMS = ("attention.output.LayerNorm", "output.LayerNorm")


@dataclass
class ImportResult:
    out_dir: Path
    config: dict
    max_abs_diff: float
    output_name: str  # the graph output the hidden states were checked against
    tokenizer_source: str
    notes: list[str] = field(default_factory=list)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise LaglessError("importing ONNX needs onnx and onnxruntime: "
                           "pip install 'lagless[nlp]' (or pip install onnx onnxruntime)") from None
    return onnx, onnxruntime


def load_graph(path: str | Path) -> Any:
    """The ``ModelProto`` in ``path``, or a one-line error for a missing, empty or corrupt file."""
    onnx, _ = _onnx()
    path = Path(path)
    if not path.is_file():
        raise LaglessError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise LaglessError(f"{path} is empty, not an ONNX model")
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path))
    except (DecodeError, OSError, ValueError, RuntimeError) as e:  # RuntimeError: external data
        raise LaglessError(f"{path} is not a readable ONNX model: {_first_line(e)}") from None
    if not model.graph.node or not model.graph.output:
        raise LaglessError(f"{path} is not an ONNX model (it holds no graph)")
    return model


class _Graph:
    """Constant tensors by name (initializers, ``Constant`` nodes, ``Identity`` aliases) and the
    nodes that read each name."""

    def __init__(self, model: Any):
        from onnx import numpy_helper

        self.nodes = list(model.graph.node)
        self.values: dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in model.graph.initializer
        }
        self.producer: dict[str, Any] = {}
        self.readers: dict[str, list[Any]] = {}
        for node in self.nodes:
            for out in node.output:
                self.producer[out] = node
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        self.values[node.output[0]] = numpy_helper.to_array(attr.t)
        changed = True
        while changed:  # Identity chains of constants (deduplicated weights)
            changed = False
            for node in self.nodes:
                if (node.op_type == "Identity" and node.input[0] in self.values
                        and node.output[0] not in self.values):
                    self.values[node.output[0]] = self.values[node.input[0]]
                    changed = True

    def attribute(self, node: Any, name: str, default: Any = None) -> Any:
        from onnx import helper

        for attr in node.attribute:
            if attr.name == name:
                return helper.get_attribute_value(attr)
        return default

    def ops(self) -> Counter:
        return Counter(n.op_type for n in self.nodes)


def _find_prefix(graph: _Graph, path: Path) -> str:
    suffix = "embeddings.word_embeddings.weight"
    found = sorted(n for n in graph.values if n.endswith(suffix))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise LaglessError(
            f"{path}: {what} '*{suffix}' weight in the graph; only BERT-family encoders exported "
            "from transformers (BERT, MiniLM) can be imported"
        )
    return found[0][: -len(suffix)]


def _linear(graph: _Graph, name: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(weight in ``nn.Linear`` layout [out, in], bias) of the projection ``name``."""
    bias = graph.values.get(name + ".bias")
    if bias is None:
        raise LaglessError(f"{path}: no '{name}.bias' in the graph; a BERT encoder's projections "
                           "all have biases")
    weight = graph.values.get(name + ".weight")
    if weight is not None:
        weight = _named_weight_layout(graph, name + ".weight", weight)
    else:
        weight = _weight_from_bias(graph, name + ".bias")
    if weight is None:
        raise LaglessError(f"{path}: cannot find the weight of '{name}' (no MatMul or Gemm "
                           f"feeds the Add of its bias)")
    if weight.ndim != 2 or weight.shape[0] != bias.shape[0]:
        raise LaglessError(f"{path}: the weight found for '{name}' has shape {list(weight.shape)}, "
                           f"which does not fit its bias of {bias.shape[0]}")
    return weight, bias


def _named_weight_layout(graph: _Graph, name: str, weight: np.ndarray) -> np.ndarray:
    """A weight that kept its name: ``nn.Linear`` layout unless a ``MatMul`` reads it directly."""
    for node in graph.readers.get(name, []):
        if node.op_type == "MatMul" and len(node.input) > 1 and node.input[1] == name:
            return weight.T
        if node.op_type == "Gemm" and node.input[1] == name and not graph.attribute(node, "transB", 0):
            return weight.T
    return weight


def _weight_from_bias(graph: _Graph, bias_name: str) -> np.ndarray | None:
    """bias -> Add -> the MatMul (or Gemm) beside it -> its constant operand, as [out, in]."""
    for node in graph.readers.get(bias_name, []):
        if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2] == bias_name:
            w = graph.values.get(node.input[1])
            if w is not None:
                return w if graph.attribute(node, "transB", 0) else w.T
        if node.op_type != "Add":
            continue
        other = [i for i in node.input if i != bias_name]
        matmul = graph.producer.get(other[0]) if len(other) == 1 else None
        if matmul is None or matmul.op_type != "MatMul":
            continue
        w_name = matmul.input[1]
        if w_name in graph.values:
            return graph.values[w_name].T  # x @ W with W stored [in, out]
        transpose = graph.producer.get(w_name)
        if (transpose is not None and transpose.op_type == "Transpose"
                and transpose.input[0] in graph.values
                and list(graph.attribute(transpose, "perm", [1, 0])) == [1, 0]):
            return graph.values[transpose.input[0]]  # x @ W.T with W in nn.Linear layout
    return None


def _required(graph: _Graph, name: str, path: Path) -> np.ndarray:
    value = graph.values.get(name)
    if value is None:
        raise LaglessError(f"{path}: no '{name}' in the graph; cannot map it onto a BERT encoder")
    return value


def _float32_value(x: float) -> float:
    """The shortest decimal of a float32 attribute: 1e-12 rather than 9.999999960041972e-13."""
    return float(str(np.float32(x)))


def _layer_norm_eps(graph: _Graph) -> float | None:
    eps = [float(graph.attribute(n, "epsilon", 1e-5)) for n in graph.nodes
           if n.op_type == "LayerNormalization"]
    if eps:
        return _float32_value(Counter(eps).most_common(1)[0][0])
    for node in graph.nodes:  # a decomposed LayerNorm: Sqrt(var + eps)
        if node.op_type != "Sqrt":
            continue
        add = graph.producer.get(node.input[0])
        if add is not None and add.op_type == "Add":
            small = [graph.values[i] for i in add.input if i in graph.values]
            if small and small[0].size == 1 and 0 < float(small[0].ravel()[0]) < 1e-2:
                return _float32_value(float(small[0].ravel()[0]))
    return None


def _activation(ops: Counter, has_pooler: bool) -> str:
    if ops["Erf"]:
        return "gelu"
    if ops["Tanh"] > int(has_pooler):
        return "gelu_new"
    if ops["Relu"]:
        return "relu"
    return "gelu"


def _head_candidates(graph: _Graph, hidden: int) -> list[int]:
    """Divisors of ``hidden``: pairs (heads, hidden / heads) that both appear as small integer
    constants first (a reshape to [batch, seq, heads, head size]), head size 64 first."""
    divisors = [d for d in range(1, hidden + 1) if hidden % d == 0]
    ints = set()
    for value in graph.values.values():
        if value.size <= 4 and np.issubdtype(value.dtype, np.integer):
            ints.update(int(v) for v in value.ravel())
    paired = [d for d in divisors if d in ints and hidden // d in ints]
    order = sorted(paired, key=lambda d: (abs(hidden // d - 64), d))
    return order + sorted((d for d in divisors if d not in order),
                          key=lambda d: (abs(hidden // d - 64), d))


def read_bert_weights(model: Any, path: Path) -> tuple[dict, dict[str, np.ndarray], list[int], Any]:
    """(config fields, state dict of a ``BertModel``, head-count candidates, graph) from the export."""
    graph = _Graph(model)
    prefix = _find_prefix(graph, path)
    emb = prefix + "embeddings."
    words = _required(graph, emb + "word_embeddings.weight", path)
    positions = _required(graph, emb + "position_embeddings.weight", path)
    types = graph.values.get(emb + "token_type_embeddings.weight")
    if types is None:
        raise LaglessError(f"{path}: no token-type embeddings; the export is not a BERT encoder "
                           "(DistilBERT and others are not supported)")
    hidden = int(words.shape[1])
    state: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": words,
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": types,
        "embeddings.LayerNorm.weight": _required(graph, emb + "LayerNorm.weight", path),
        "embeddings.LayerNorm.bias": _required(graph, emb + "LayerNorm.bias", path),
    }
    layers = 0
    while (f"{prefix}encoder.layer.{layers}.attention.self.query.bias" in graph.values
           or f"{prefix}encoder.layer.{layers}.attention.self.query.weight" in graph.values):
        layers += 1
    if layers == 0:
        raise LaglessError(f"{path}: no '{prefix}encoder.layer.0.attention.self.query' in the graph; "
                           "only BERT-family encoders can be imported")
    for i in range(layers):
        for part in _PROJECTIONS:
            name = f"encoder.layer.{i}.{part}"
            state[name + ".weight"], state[name + ".bias"] = _linear(graph, prefix + name, path)
        for part in _LAYER_NORMS:
            name = f"encoder.layer.{i}.{part}"
            state[name + ".weight"] = _required(graph, prefix + name + ".weight", path)
            state[name + ".bias"] = _required(graph, prefix + name + ".bias", path)
    has_pooler = (prefix + "pooler.dense.bias") in graph.values
    if has_pooler:
        state["pooler.dense.weight"], state["pooler.dense.bias"] = _linear(
            graph, prefix + "pooler.dense", path)
    for name, value in state.items():
        if not np.issubdtype(value.dtype, np.floating):
            raise LaglessError(f"{path}: weight '{name}' is {value.dtype}, not floating point "
                               "(quantised exports are not supported)")
    fields = {
        "vocab_size": int(words.shape[0]),
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": int(state["encoder.layer.0.intermediate.dense.bias"].shape[0]),
        "max_position_embeddings": int(positions.shape[0]),
        "type_vocab_size": int(types.shape[0]),
        "hidden_act": _activation(graph.ops(), has_pooler),
    }
    eps = _layer_norm_eps(graph)
    if eps is not None:
        fields["layer_norm_eps"] = eps
    return fields, state, _head_candidates(graph, hidden), graph


def _check_inputs(model: Any, path: Path) -> dict[str, Any]:
    """Graph input name -> numpy integer type; refuses inputs a BERT encoder does not take."""
    types = {6: np.int32, 7: np.int64}
    inputs: dict[str, Any] = {}
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        if value.name not in _INPUTS:
            raise LaglessError(f"{path}: unexpected graph input '{value.name}'; a BERT encoder "
                               f"export takes {', '.join(_INPUTS)}")
        elem = value.type.tensor_type.elem_type
        if elem not in types:
            raise LaglessError(f"{path}: input '{value.name}' is not an integer tensor")
        inputs[value.name] = types[elem]
    if "input_ids" not in inputs:
        raise LaglessError(f"{path}: the graph takes no input_ids; it is not a text encoder")
    return inputs


def _probe_inputs(vocab: int, type_vocab: int, max_positions: int) -> dict[str, np.ndarray]:
    """Two rows of seeded token ids, the second padded, so the attention mask is exercised."""
    rng = np.random.default_rng(0)
    length = min(16, max_positions)
    ids = rng.integers(0, vocab, size=(2, length))
    mask = np.ones_like(ids)
    mask[1, length * 3 // 4:] = 0
    types = rng.integers(0, type_vocab, size=(2, length)) if type_vocab > 1 else np.zeros_like(ids)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _bert(fields: dict, heads: int, state: dict[str, np.ndarray]):
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(num_attention_heads=heads, **fields)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # a pooler absent from the export starts from a seeded init
        model = BertModel(config).eval()
    tensors = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.startswith("pooler.")]
    if missing or unexpected:  # a bug here, not the user's file
        raise RuntimeError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    return model


def _ort_errors(ort) -> tuple[type[Exception], ...]:
    """onnxruntime's own exception types (Fail, InvalidGraph, ...), which derive from Exception."""
    state = ort.capi.onnxruntime_pybind11_state
    return tuple(v for v in vars(state).values()
                 if isinstance(v, type) and issubclass(v, Exception))


def compare_with_onnxruntime(model: Any, onnx_path: Path, inputs: dict[str, np.ndarray],
                             feed_types: dict[str, Any], hidden: int) -> tuple[float, str]:
    """(max abs difference, output name) between the model's hidden states and the graph's
    [batch, sequence, hidden] output closest to them, on the unpadded positions."""
    import torch

    _, ort = _onnx()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        feed = {name: inputs[name].astype(t) for name, t in feed_types.items()}
        outputs = session.run(None, feed)
    except (*_ort_errors(ort), RuntimeError, ValueError) as e:
        raise LaglessError(f"{onnx_path}: onnxruntime cannot run it: {_first_line(e)}") from None
    names = [o.name for o in session.get_outputs()]
    with torch.inference_mode():
        kwargs = {k: torch.from_numpy(inputs[k]) for k in feed_types}
        ours = model(**kwargs).last_hidden_state.numpy()
    keep = inputs["attention_mask"].astype(bool)
    best = (float("inf"), "")
    for name, out in zip(names, outputs, strict=True):
        if out.shape != ours.shape:
            continue
        diff = float(np.abs(out.astype(np.float64) - ours)[keep].max())
        best = min(best, (diff, name))
    if not best[1]:
        raise LaglessError(f"{onnx_path}: no graph output of shape [batch, sequence, {hidden}] "
                           "(the hidden states) to check the conversion against")
    return best


def _tokenizer_files(folder: Path) -> bool:
    from lagless.kdlora.models import _TOKENIZER_FILES

    return any((folder / f).is_file() for f in _TOKENIZER_FILES)


def resolve_tokenizer(onnx_path: Path, tokenizer_dir: str | None, vocab_size: int) -> tuple[Any, str]:
    """(tokenizer, where it came from): ``tokenizer_dir``, files beside the ONNX file, or the
    bundled all-MiniLM-L6-v2 tokenizer when the vocabulary sizes match."""
    from transformers import AutoTokenizer

    from lagless.kdlora.models import default_model_path, quiet_transformers

    if tokenizer_dir is not None:
        folder, source = Path(tokenizer_dir), f"--tokenizer {tokenizer_dir}"
        if not folder.is_dir() or not _tokenizer_files(folder):
            raise LaglessError(f"--tokenizer {tokenizer_dir}: not a folder holding tokenizer files "
                               "(tokenizer.json or vocab.txt)")
    else:
        beside = [d for d in (onnx_path.parent, onnx_path.parent.parent) if _tokenizer_files(d)]
        if beside:
            folder, source = beside[0], f"the tokenizer files beside the ONNX file ({beside[0]})"
        else:
            bundled = default_model_path()
            with quiet_transformers():
                size = len(AutoTokenizer.from_pretrained(bundled, local_files_only=True))
            if size != vocab_size:
                raise LaglessError(
                    f"{onnx_path}: no tokenizer beside it, and its vocabulary ({vocab_size:,} "
                    f"tokens) is not the bundled MiniLM's ({size:,}): pass --tokenizer DIR")
            folder = Path(bundled)
            source = (f"the bundled all-MiniLM-L6-v2 tokenizer (no tokenizer beside the ONNX file; "
                      f"same vocabulary size, {vocab_size:,} tokens)")
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as e:
        raise LaglessError(f"cannot load the tokenizer in {folder}: {_first_line(e)}") from None
    if len(tokenizer) > vocab_size:
        raise LaglessError(f"the tokenizer from {source} has {len(tokenizer):,} tokens but the "
                           f"model only {vocab_size:,}: it is not this model's tokenizer")
    return tokenizer, source


def _check_out_dir(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LaglessError(f"--out {out} exists and is not an empty folder: choose a new one")


def import_onnx(onnx_path: str | Path, out_dir: str | Path, *, tokenizer: str | None = None,
                tolerance: float = DEFAULT_TOLERANCE) -> ImportResult:
    """Convert the BERT-family encoder in ``onnx_path`` into a transformers folder ``out_dir``.

    The folder holds ``config.json``, ``model.safetensors`` (a ``BertModel``), the tokenizer and
    ``lagless_import.json`` (source, check result). It is written only after the rebuilt model's
    hidden states match onnxruntime's to within ``tolerance`` (max abs difference), and appears
    whole or not at all.
    """
    from lagless.kdlora.models import quiet_transformers

    onnx_path, out = Path(onnx_path), Path(out_dir)
    if tolerance <= 0:
        raise LaglessError(f"--tolerance must be > 0, got {tolerance}")
    _check_out_dir(out)
    model_proto = load_graph(onnx_path)
    fields, state, heads, _graph = read_bert_weights(model_proto, onnx_path)
    feed_types = _check_inputs(model_proto, onnx_path)
    del model_proto
    tok, tok_source = resolve_tokenizer(onnx_path, tokenizer, fields["vocab_size"])
    inputs = _probe_inputs(fields["vocab_size"], fields["type_vocab_size"],
                           fields["max_position_embeddings"])
    tried: list[tuple[float, int]] = []
    for count in heads:
        model = _bert(fields, count, state)
        diff, output = compare_with_onnxruntime(model, onnx_path, inputs, feed_types,
                                                fields["hidden_size"])
        tried.append((diff, count))
        if diff <= tolerance:
            break
    else:
        best, count = min(tried)
        raise LaglessError(
            f"{onnx_path}: the rebuilt BERT encoder differs from onnxruntime by {best:.3g} at best "
            f"({count} heads; tolerance {tolerance:g}); the export is not a plain BERT encoder")
    notes = []
    if "pooler.dense.weight" not in state:
        notes.append("the export has no pooler: the folder's pooler is a seeded fresh "
                     "initialisation (zero bias), trained with the head by kdlora")
    config = model.config.to_dict()
    record = {"source": str(onnx_path.resolve()), "source_bytes": onnx_path.stat().st_size,
              "checked_output": output, "max_abs_diff": diff, "tolerance": tolerance,
              "num_attention_heads": count, "tokenizer": tok_source, "notes": notes}
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
        (tmp / IMPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        if out.exists():
            out.rmdir()  # checked empty above
        tmp.rename(out)
    except OSError as e:
        raise LaglessError(f"cannot write {out}: {_first_line(e)}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {k: config[k] for k in ("num_hidden_layers", "hidden_size", "num_attention_heads",
                                      "intermediate_size", "vocab_size", "max_position_embeddings",
                                      "type_vocab_size", "layer_norm_eps", "hidden_act")}
    return ImportResult(out, summary, diff, output, tok_source, notes)

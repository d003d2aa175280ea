// One fused pipelined step in C++ (see fused_native.py for why and when it is used).
//
// The same calls as FusedPipelinedNet._lean_step in Python, in one call from Python: at
// batch 1 on a CPU each Python-level torch call costs about a microsecond of interpreter
// and argument parsing on top of its kernel, which is a fifth of a step at 8 layers.
#include <ATen/autocast_mode.h>
#include <torch/extension.h>

#include <tuple>

// Whether any row starts an episode: read straight from a bool tensor's memory, since
// any().item() costs two dispatched calls (about 2 us of a 50 us step).
static bool any_true(const at::Tensor& flags) {
  if (flags.scalar_type() != at::kBool || !flags.is_contiguous()) {
    return flags.any().item<bool>();
  }
  const bool* p = flags.data_ptr<bool>();
  for (int64_t i = 0, n = flags.numel(); i < n; ++i) {
    if (p[i]) return true;
  }
  return false;
}

// Turns a CPU autocast (a bf16 policy's context) off for one step: the fused step is float32.
struct NoCpuAutocast {
  const bool was = at::autocast::is_autocast_enabled(at::kCPU);
  NoCpuAutocast() { if (was) at::autocast::set_autocast_enabled(at::kCPU, false); }
  ~NoCpuAutocast() { if (was) at::autocast::set_autocast_enabled(at::kCPU, true); }
};

using Step = std::tuple<at::Tensor, at::Tensor>;

// The constants of one fused actor, held once so that a step parses four arguments, not eighteen.
// Side columns: [rows 1..n_pre | head | batched rows, only if bmm_reads_side] (FusedPipelinedNet._build_lean).
struct LeanStep {
  at::Tensor side_bias, side_weight, bmm_bias, weights, head_weight, head_index, res_rows, res_slots;
  int64_t n_pre, s0, head_mode;  // head_mode: 0 no stacked register, 1 the last, 2 all, 3 head_index
  bool bmm_reads_side;
  int64_t fresh_start, fresh_len;  // the fresh last actions in the flat observation (length 0: none)
  int64_t obs_dim;

  // None when the inputs are not what this step takes (not a flat float32 CPU observation of
  // obs_dim, or episode starts elsewhere): the caller then runs its Python step.
  c10::optional<Step> step(const at::Tensor& hidden_in, const at::Tensor& obs_reg_in, const at::Tensor& x,
                           const c10::optional<at::Tensor>& episode_start) const {
    if (!x.is_cpu() || x.scalar_type() != at::kFloat || x.dim() != 2 || x.size(1) != obs_dim ||
        (episode_start.has_value() && !episode_start->is_cpu())) {
      return c10::nullopt;
    }
    NoCpuAutocast float32_only;
    at::Tensor hidden = hidden_in, obs_reg = obs_reg_in;
    if (episode_start.has_value() && any_true(*episode_start)) {
      auto keep = episode_start->logical_not().to(hidden.scalar_type()).unsqueeze(-1);  // [B, 1]
      hidden = hidden * keep;
      obs_reg = obs_reg * keep;
    }
    const int64_t batch = obs_reg.size(0), width = hidden.size(2), blocks = weights.size(0);
    auto side_in = fresh_len > 0 ? at::cat({obs_reg, x.narrow(1, fresh_start, fresh_len)}, 1) : obs_reg;
    auto side = at::addmm(side_bias, side_in, side_weight);
    const int64_t out = head_weight.size(1), head_end = n_pre * width + out;
    auto rows_bias = bmm_reads_side
        ? side.narrow(1, head_end, blocks * width).view({batch, blocks, width}).transpose(0, 1)
        : bmm_bias;
    auto new_hidden = at::empty({hidden.size(0), batch, width}, hidden.options());
    auto tail = new_hidden.narrow(0, n_pre, blocks);
    at::baddbmm_out(tail, rows_bias, hidden.narrow(0, s0, blocks), weights);
    at::relu_(tail);
    auto pre = new_hidden.narrow(0, 0, n_pre);
    at::clamp_min_out(pre, side.narrow(1, 0, n_pre * width).view({batch, n_pre, width}).transpose(0, 1), 0.0);
    if (res_rows.numel() > 0) {
      new_hidden.index_add_(0, res_rows, hidden.index_select(0, res_slots));
    }
    auto head = side.narrow(1, n_pre * width, out);
    if (head_mode == 1) {
      head = at::addmm(head, hidden.select(0, hidden.size(0) - 1), head_weight);
    } else if (head_mode >= 2) {
      auto regs = head_mode == 2 ? hidden : hidden.index_select(0, head_index);
      head = at::addmm(head, regs.transpose(0, 1).reshape({batch, -1}), head_weight);
    } else {
      head = head.clone();
    }
    return Step{head, new_hidden};
  }
};

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  pybind11::class_<LeanStep>(m, "LeanStep", pybind11::module_local())  // no clash with another build
      .def(pybind11::init([](at::Tensor side_bias, at::Tensor side_weight, at::Tensor bmm_bias, at::Tensor weights,
                             at::Tensor head_weight, at::Tensor head_index, at::Tensor res_rows,
                             at::Tensor res_slots, int64_t n_pre, int64_t s0, int64_t head_mode,
                             bool bmm_reads_side, int64_t fresh_start, int64_t fresh_len, int64_t obs_dim) {
        return LeanStep{side_bias, side_weight, bmm_bias, weights, head_weight, head_index, res_rows, res_slots,
                        n_pre, s0, head_mode, bmm_reads_side, fresh_start, fresh_len, obs_dim};
      }))
      .def("__call__", &LeanStep::step, "one fused pipelined step: (hidden, observation register, "
           "observation, episode_start or None) -> (head, new hidden registers), or None for inputs it "
           "does not take");
}

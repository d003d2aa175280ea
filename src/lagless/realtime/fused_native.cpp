// One fused pipelined step in C++ (see fused_native.py for why and when it is used).
//
// The same calls as FusedPipelinedNet._lean_step in Python, in one call from Python: at
// batch 1 on a CPU each Python-level torch call costs about a microsecond of interpreter
// and argument parsing on top of its kernel, which is a fifth of a step at 8 layers.
#include <ATen/autocast_mode.h>
#include <torch/extension.h>

#include <algorithm>
#include <tuple>
#include <vector>

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

// The residual adds and the head, shared by both steps: ``head_side`` is the head's
// pre-activation from side sources and biases; head_mode 0: no stacked register, 1: the last,
// 2: all, 3: those in head_index.
static at::Tensor finish_step(at::Tensor& new_hidden, const at::Tensor& hidden, const at::Tensor& head_side,
                              const at::Tensor& res_rows, const at::Tensor& res_slots, const at::Tensor& head_weight,
                              const at::Tensor& head_index, int64_t head_mode, int64_t batch) {
  if (res_rows.numel() > 0) {
    new_hidden.index_add_(0, res_rows, hidden.index_select(0, res_slots));
  }
  if (head_mode == 1) {
    return at::addmm(head_side, hidden.select(0, hidden.size(0) - 1), head_weight);
  }
  if (head_mode >= 2) {
    auto regs = head_mode == 2 ? hidden : hidden.index_select(0, head_index);
    return at::addmm(head_side, regs.transpose(0, 1).reshape({batch, -1}), head_weight);
  }
  return head_side.clone();
}

// Small batches skip ATen's matmul and elementwise calls around the batched matmul: at batch 1
// on a CPU each dispatched op costs 0.5-4 us (the side addmm of a 17-wide observation, about
// 4 us, is a tenth of an 8-layer step), while the same loops over raw memory take a fraction.
// Larger batches keep ATen's kernels, which then win.
constexpr int64_t kRawBatch = 4;

// The raw loops in AVX2 too where the compiler can pick per machine at load time (GCC, x86-64);
// elsewhere they build for the baseline instruction set.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define LAGLESS_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LAGLESS_VECTOR_CLONES
#endif

// out[0:n] += v * w[0:n]
LAGLESS_VECTOR_CLONES static void axpy(float* __restrict__ out, const float* __restrict__ w, float v, int64_t n) {
  for (int64_t c = 0; c < n; ++c) out[c] += v * w[c];
}

// sum of a[i] * b[i], in 32 partial sums: vectorised they are four independent chains of
// multiply-adds, so the loop is not held up by the latency of one
LAGLESS_VECTOR_CLONES static float dot(const float* __restrict__ a, const float* __restrict__ b, int64_t n) {
  constexpr int kLanes = 32;
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) acc[k] += a[i + k] * b[i + k];
  }
  float s = 0.0f;
  for (int k = 0; k < kLanes; ++k) s += acc[k];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

static bool plain_float(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat && t.is_contiguous() && !t.requires_grad();
}

// The constants of one fused actor, held once so that a step parses four arguments, not eighteen.
// Side columns: [rows 1..n_pre | head | batched rows, only if bmm_reads_side] (FusedPipelinedNet._build_lean).
struct LeanStep {
  at::Tensor side_bias, side_weight, bmm_bias, weights, head_weight, head_index, res_rows, res_slots;
  int64_t n_pre, s0, head_mode;  // head_mode: 0 no stacked register, 1 the last, 2 all, 3 head_index
  bool bmm_reads_side;
  int64_t fresh_start, fresh_len;  // the fresh last actions in the flat observation (length 0: none)
  int64_t obs_dim;
  at::Tensor head_weight_t;  // [out, registers * width]: a transposed copy of the head's weight
  int64_t head_version = -1;  // head_weight's version when copied (-1: untracked, an inference tensor)
  std::vector<int64_t> head_slots, res_row_list, res_slot_list;  // the index tensors, read once
  bool raw_ok;               // the constants are plain float32 memory the raw step can read

  void init_raw() {
    head_weight_t = head_weight.t().contiguous();
    if (!head_weight.is_inference()) head_version = head_weight._version();
    const int64_t slots = head_weight.size(0) / std::max<int64_t>(weights.size(2), 1);
    for (int64_t k = 0; k < slots; ++k) {
      head_slots.push_back(head_mode == 1 ? -1 : head_mode == 2 ? k : head_index[k].item<int64_t>());
    }
    for (int64_t k = 0; k < res_rows.numel(); ++k) {
      res_row_list.push_back(res_rows[k].item<int64_t>());
      res_slot_list.push_back(res_slots[k].item<int64_t>());
    }
    raw_ok = plain_float(side_bias) && plain_float(side_weight) && plain_float(head_weight_t) && plain_float(weights);
  }

  // side = [observation register | fresh actions] @ side_weight + side_bias, row by row, into sp
  void raw_side(const at::Tensor& obs_reg, const at::Tensor& x, int64_t batch, float* sp) const {
    const int64_t cols = side_weight.size(1), in_obs = obs_reg.size(1);
    const float* w = side_weight.data_ptr<float>();
    const float* bias = side_bias.data_ptr<float>();
    const float* o = obs_reg.data_ptr<float>();
    const float* xp = x.data_ptr<float>();
    for (int64_t b = 0; b < batch; ++b) {
      float* row = sp + b * cols;
      std::copy(bias, bias + cols, row);
      for (int64_t i = 0; i < in_obs; ++i) axpy(row, w + i * cols, o[b * in_obs + i], cols);
      for (int64_t i = 0; i < fresh_len; ++i) {
        axpy(row, w + (in_obs + i) * cols, xp[b * obs_dim + fresh_start + i], cols);
      }
    }
  }

  // the ReLUs, the residual adds and the head, on raw memory (what the ATen step does after its bmm)
  at::Tensor raw_finish(at::Tensor& new_hidden, const at::Tensor& hidden, const float* sp, int64_t batch) const {
    const int64_t width = hidden.size(2), rows = hidden.size(0), cols = side_weight.size(1);
    const int64_t out = head_weight.size(1), head_at = n_pre * width;
    float* nh = new_hidden.data_ptr<float>();
    const float* h = hidden.data_ptr<float>();
    for (int64_t i = n_pre * batch * width, n = rows * batch * width; i < n; ++i) nh[i] = std::max(nh[i], 0.0f);
    for (int64_t r = 0; r < n_pre; ++r) {
      for (int64_t b = 0; b < batch; ++b) {
        float* dst = nh + (r * batch + b) * width;
        const float* src = sp + b * cols + r * width;
        for (int64_t j = 0; j < width; ++j) dst[j] = std::max(src[j], 0.0f);
      }
    }
    for (size_t k = 0; k < res_row_list.size(); ++k) {
      float* dst = nh + res_row_list[k] * batch * width;
      axpy(dst, h + res_slot_list[k] * batch * width, 1.0f, batch * width);
    }
    auto head = at::empty({batch, out}, hidden.options());
    float* hp = head.data_ptr<float>();
    const float* wt = head_weight_t.data_ptr<float>();
    const int64_t reg_len = head_weight.size(0);
    // at batch 1 the registers the head reads in order (the last, or all) are one stretch of memory
    const bool one_stretch = batch == 1 && (head_mode == 1 || head_mode == 2);
    const float* stretch = h + (head_mode == 1 ? rows - 1 : 0) * width;
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t o = 0; o < out; ++o) {
        float s = sp[b * cols + head_at + o];
        if (one_stretch) {
          hp[o] = s + dot(stretch, wt + o * reg_len, reg_len);
          continue;
        }
        for (size_t k = 0; k < head_slots.size(); ++k) {
          const int64_t slot = head_slots[k] < 0 ? rows - 1 : head_slots[k];
          s += dot(h + (slot * batch + b) * width, wt + o * reg_len + k * width, width);
        }
        hp[b * out + o] = s;
      }
    }
    return head;
  }

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
    // (a head weight changed in place since the copy, as load_state_dict does: ATen reads it live)
    const bool raw = raw_ok && batch <= kRawBatch && plain_float(hidden) && plain_float(obs_reg) &&
                     plain_float(x) && obs_reg.dim() == 2 &&
                     (head_version < 0 || head_weight._version() == head_version);
    at::Tensor side;
    if (raw) {
      side = at::empty({batch, side_weight.size(1)}, obs_reg.options());
      raw_side(obs_reg, x, batch, side.data_ptr<float>());
    } else {
      auto side_in = fresh_len > 0 ? at::cat({obs_reg, x.narrow(1, fresh_start, fresh_len)}, 1) : obs_reg;
      side = at::addmm(side_bias, side_in, side_weight);
    }
    const int64_t out = head_weight.size(1), head_end = n_pre * width + out;
    auto rows_bias = bmm_reads_side
        ? side.narrow(1, head_end, blocks * width).view({batch, blocks, width}).transpose(0, 1)
        : bmm_bias;
    auto new_hidden = at::empty({hidden.size(0), batch, width}, hidden.options());
    auto tail = new_hidden.narrow(0, n_pre, blocks);
    at::baddbmm_out(tail, rows_bias, hidden.narrow(0, s0, blocks), weights);
    if (raw) {
      auto head = raw_finish(new_hidden, hidden, side.data_ptr<float>(), batch);
      return Step{head, new_hidden};
    }
    at::relu_(tail);
    auto pre = new_hidden.narrow(0, 0, n_pre);
    at::clamp_min_out(pre, side.narrow(1, 0, n_pre * width).view({batch, n_pre, width}).transpose(0, 1), 0.0);
    auto head = finish_step(new_hidden, hidden, side.narrow(1, n_pre * width, out), res_rows, res_slots,
                            head_weight, head_index, head_mode, batch);
    return Step{head, new_hidden};
  }
};

// A wide side source (an observation or a convolution's register wider than the hidden
// layers): one matmul over the rows that read it, the head's part first (head_cols wide).
struct WideSource {
  bool is_obs;
  at::Tensor weight, rows;
  int64_t head_cols, span_lo, span_hi;  // span_lo < 0: the rows are not consecutive (index_add_)
};

// FusedPipelinedNet._step for a network whose first stage is a convolution: the general
// layout (wide sources, any head wiring) and the convolution, in one call from Python.
struct ConvStep {
  at::Tensor row_bias, merged_weight, weights, block_rows, block_slots, head_weight, head_index, res_rows,
      res_slots, conv_weight, conv_bias;
  std::vector<WideSource> wide;
  std::vector<int64_t> conv_stride, conv_padding, conv_dilation;
  int64_t merged_mode, fresh_start, fresh_len, r0, s0, head_mode, n_rows, width, out_dim, obs_dim, h, w, c,
      image_dim;
  bool fast;

  using Out = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

  c10::optional<Out> step(const at::Tensor& hidden_in, const at::Tensor& obs_reg_in, const at::Tensor& conv_in,
                          const at::Tensor& x, const c10::optional<at::Tensor>& episode_start) const {
    if (!x.is_cpu() || x.scalar_type() != at::kFloat || x.dim() != 2 || x.size(1) != obs_dim ||
        (episode_start.has_value() && !episode_start->is_cpu())) {
      return c10::nullopt;
    }
    NoCpuAutocast float32_only;
    at::Tensor hidden = hidden_in, obs_reg = obs_reg_in, conv_reg = conv_in;
    if (episode_start.has_value() && any_true(*episode_start)) {
      auto keep = episode_start->logical_not().to(hidden.scalar_type()).unsqueeze(-1);  // [B, 1]
      hidden = hidden * keep;
      obs_reg = obs_reg * keep;
      conv_reg = conv_reg * keep;
    }
    const int64_t batch = obs_reg.size(0);
    at::Tensor pre;
    if (merged_mode > 0) {
      auto fresh = fresh_len > 0 ? x.narrow(1, fresh_start, fresh_len) : at::Tensor();
      auto side_in = merged_mode == 1 ? obs_reg : merged_mode == 2 ? fresh : at::cat({obs_reg, fresh}, 1);
      pre = at::addmm(row_bias, side_in, merged_weight).view({batch, n_rows, width}).transpose(0, 1);
    } else {
      pre = row_bias.view({n_rows, 1, width}).expand({n_rows, batch, width}).clone();
    }
    for (const auto& src : wide) {
      auto part = at::mm(src.is_obs ? obs_reg : conv_reg, src.weight);
      if (src.head_cols > 0) {
        pre.select(0, 0).narrow(1, 0, src.head_cols).add_(part.narrow(1, 0, src.head_cols));
      }
      const int64_t k = src.rows.numel();
      if (k > 0) {
        auto rows_part = part.narrow(1, src.head_cols, k * width).view({batch, k, width}).transpose(0, 1);
        if (src.span_lo >= 0) {
          pre.narrow(0, src.span_lo, src.span_hi - src.span_lo).add_(rows_part);
        } else {
          pre.index_add_(0, src.rows, rows_part);
        }
      }
    }
    const int64_t blocks = weights.size(0);
    at::Tensor new_hidden;
    if (fast && blocks > 0) {
      new_hidden = at::empty({n_rows - 1, batch, width}, hidden.options());
      if (r0 > 1) {
        new_hidden.narrow(0, 0, r0 - 1).copy_(pre.narrow(0, 1, r0 - 1));
      }
      auto tail = new_hidden.narrow(0, r0 - 1, blocks);
      at::baddbmm_out(tail, pre.narrow(0, r0, blocks), hidden.narrow(0, s0, blocks), weights);
    } else {
      new_hidden = pre.narrow(0, 1, n_rows - 1).clone();
      if (blocks > 0) {
        new_hidden.index_add_(0, block_rows, at::bmm(hidden.index_select(0, block_slots), weights));
      }
    }
    at::relu_(new_hidden);
    auto head = finish_step(new_hidden, hidden, pre.select(0, 0).narrow(1, 0, out_dim), res_rows, res_slots,
                            head_weight, head_index, head_mode, batch);
    // the convolution reads last step's observation (its register): HWC memory viewed as NCHW
    auto image = obs_reg.narrow(1, 0, image_dim).reshape({batch, h, w, c}).permute({0, 3, 1, 2});
    auto conv = at::conv2d(image, conv_weight, conv_bias, conv_stride, conv_padding, conv_dilation);
    at::relu_(conv);
    auto feats = conv.permute({0, 2, 3, 1}).reshape({batch, -1});
    if (image_dim < obs_reg.size(1)) {
      feats = at::cat({feats, obs_reg.narrow(1, image_dim, obs_reg.size(1) - image_dim)}, 1);
    }
    return Out{head, new_hidden, feats};
  }
};

template <typename T>
static T get(const pybind11::dict& d, const char* key) {
  return d[key].cast<T>();
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  pybind11::class_<ConvStep>(m, "ConvStep", pybind11::module_local())
      .def(pybind11::init([](const pybind11::dict& d, const pybind11::list& wide) {
        ConvStep s;
        s.row_bias = get<at::Tensor>(d, "row_bias");
        s.merged_weight = get<at::Tensor>(d, "merged_weight");
        s.weights = get<at::Tensor>(d, "weights");
        s.block_rows = get<at::Tensor>(d, "block_rows");
        s.block_slots = get<at::Tensor>(d, "block_slots");
        s.head_weight = get<at::Tensor>(d, "head_weight");
        s.head_index = get<at::Tensor>(d, "head_index");
        s.res_rows = get<at::Tensor>(d, "res_rows");
        s.res_slots = get<at::Tensor>(d, "res_slots");
        s.conv_weight = get<at::Tensor>(d, "conv_weight");
        s.conv_bias = get<at::Tensor>(d, "conv_bias");
        s.conv_stride = get<std::vector<int64_t>>(d, "conv_stride");
        s.conv_padding = get<std::vector<int64_t>>(d, "conv_padding");
        s.conv_dilation = get<std::vector<int64_t>>(d, "conv_dilation");
        s.merged_mode = get<int64_t>(d, "merged_mode");
        s.fresh_start = get<int64_t>(d, "fresh_start");
        s.fresh_len = get<int64_t>(d, "fresh_len");
        s.r0 = get<int64_t>(d, "r0");
        s.s0 = get<int64_t>(d, "s0");
        s.head_mode = get<int64_t>(d, "head_mode");
        s.n_rows = get<int64_t>(d, "n_rows");
        s.width = get<int64_t>(d, "width");
        s.out_dim = get<int64_t>(d, "out_dim");
        s.obs_dim = get<int64_t>(d, "obs_dim");
        s.h = get<int64_t>(d, "h");
        s.w = get<int64_t>(d, "w");
        s.c = get<int64_t>(d, "c");
        s.image_dim = get<int64_t>(d, "image_dim");
        s.fast = get<bool>(d, "fast");
        for (const auto& item : wide) {
          auto t = item.cast<pybind11::tuple>();
          s.wide.push_back(WideSource{t[0].cast<bool>(), t[1].cast<at::Tensor>(), t[2].cast<at::Tensor>(),
                                      t[3].cast<int64_t>(), t[4].cast<int64_t>(), t[5].cast<int64_t>()});
        }
        return s;
      }))
      .def("__call__", &ConvStep::step, "one fused step of a network with a first convolution: (hidden, "
           "observation register, convolution register, observation, episode_start or None) -> (head, new "
           "hidden registers, new convolution register), or None for inputs it does not take");

  pybind11::class_<LeanStep>(m, "LeanStep", pybind11::module_local())  // no clash with another build
      .def(pybind11::init([](at::Tensor side_bias, at::Tensor side_weight, at::Tensor bmm_bias, at::Tensor weights,
                             at::Tensor head_weight, at::Tensor head_index, at::Tensor res_rows,
                             at::Tensor res_slots, int64_t n_pre, int64_t s0, int64_t head_mode,
                             bool bmm_reads_side, int64_t fresh_start, int64_t fresh_len, int64_t obs_dim) {
        LeanStep s{side_bias, side_weight, bmm_bias, weights, head_weight, head_index, res_rows, res_slots,
                   n_pre, s0, head_mode, bmm_reads_side, fresh_start, fresh_len, obs_dim};
        s.init_raw();
        return s;
      }))
      .def("__call__", &LeanStep::step, "one fused pipelined step: (hidden, observation register, "
           "observation, episode_start or None) -> (head, new hidden registers), or None for inputs it "
           "does not take");
}

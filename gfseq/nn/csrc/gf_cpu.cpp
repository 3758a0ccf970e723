// CPU kernels for gated-feedback RNN stacks: the whole forward and backward through time in C++.
//
// The same computation as GFStackFunction in gfseq/nn/fused.py (the Python twin; tests compare them)
// with three changes that only make it faster:
//  * each layer step's elementwise work is one fused, vectorised pass over its rows;
//  * the state h_t^j is multiplied once by [W_in^{j+1} | W_rec^j], giving layer j+1's input products at
//    step t and layer j's share of the recurrent products of step t+1 together (without dropout);
//  * the time loops run here, without the Python interpreter between operations.
//
// Layout (all row-major): block order inside a layer puts the memory block last (tanh: n; GRU: r z n;
// LSTM: i f o g). Input products A (N, KIN) with KIN = G*H + Lg (Lg = L when gated). Recurrent products
// R_t[i] (N, K) read from source layer i's state before step t, K = NF + L*H + Lg*L: its non-memory
// blocks (NF = (G-1)*H), its memory-block product for every target layer j (U^{i->j} h^i at FB + j*H),
// and its share of every gate logit (target j, source p at GATE + j*L + p).
#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <vector>

namespace {

using at::Tensor;
constexpr int kTanh = 0, kGru = 1, kLstm = 2;
constexpr int64_t kMaxLayers = 64;
constexpr int64_t kRowGrain = 8;  // rows per thread at least: a row is a few hundred to thousands of values

struct Dims {
  int64_t T, N, L, H, G, GH, NF, Lg, KIN, K, FB, GATE, W;
  Dims(int64_t unit, bool gated, int64_t T_, int64_t N_, int64_t L_, int64_t H_)
      : T(T_), N(N_), L(L_), H(H_) {
    G = unit == kTanh ? 1 : (unit == kGru ? 3 : 4);
    GH = G * H;
    NF = (G - 1) * H;
    Lg = gated ? L : 0;
    KIN = GH + Lg;
    K = NF + L * H + Lg * L;
    FB = NF;
    GATE = NF + L * H;
    W = KIN + K;
  }
};

template <typename T>
using Vec = at::vec::Vectorized<T>;

template <typename T>
inline Vec<T> sigmoid(const Vec<T>& x) {
  const Vec<T> one(T(1));
  return one / (one + x.neg().exp());
}

template <typename T>
inline T scalar_sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// Pointers for one layer step, row 0; row n adds n * stride.
template <typename T>
struct StepIO {
  const T* a;          // input products (row stride a_stride)
  int64_t a_stride;
  const T* a_bias;     // nullable, KIN
  const T* r;          // R_t of source 0 (row stride r_row, source stride r_src)
  int64_t r_row, r_src;
  const T* h_prev;     // (N, H): this layer's state before the step
  const T* c_prev;     // LSTM
  const T* b_hn;       // GRU, nullable
  T* h_out;
  T* c_out;
  T* act;              // (N, GH)
  T* q_out;            // GRU (N, H)
  T* g_out;            // gated (N, L)
};

template <typename T>
void cell_forward(const Dims& d, int unit, bool gated, int64_t j, const StepIO<T>& s) {
  using V = Vec<T>;
  const int64_t H = d.H, L = d.L;
  at::parallel_for(0, d.N, kRowGrain, [&](int64_t begin, int64_t end) {
  T g[kMaxLayers];
  for (int64_t n = begin; n < end; ++n) {
    const T* a = s.a + n * s.a_stride;
    auto r_of = [&](int64_t i) { return s.r + i * s.r_src + n * s.r_row; };
    for (int64_t i = 0; i < L; ++i) {
      if (!gated) {
        g[i] = T(1);
        continue;
      }
      T logit = a[d.GH + i] + (s.a_bias ? s.a_bias[d.GH + i] : T(0));
      for (int64_t src = 0; src < L; ++src) logit += r_of(src)[d.GATE + j * L + i];
      g[i] = scalar_sigmoid(logit);
      s.g_out[n * L + i] = g[i];
    }
    const T* own = r_of(j);
    for (int64_t h0 = 0; h0 < H; h0 += V::size()) {
      const int64_t cnt = std::min<int64_t>(V::size(), H - h0);
      auto ld = [&](const T* p) { return V::loadu(p + h0, cnt); };
      auto in = [&](int64_t block) {
        V v = ld(a + block * H);
        return s.a_bias ? v + ld(s.a_bias + block * H) : v;
      };
      V gsum(T(0));
      for (int64_t i = 0; i < L; ++i) gsum = gsum + V(g[i]) * ld(r_of(i) + d.FB + j * H);
      T* h_out = s.h_out + n * H + h0;
      if (unit == kTanh) {
        (in(0) + gsum).tanh().store(h_out, cnt);
      } else if (unit == kLstm) {
        V ig = sigmoid(in(0) + ld(own));
        V fg = sigmoid(in(1) + ld(own + H));
        V og = sigmoid(in(2) + ld(own + 2 * H));
        V cc = (in(3) + gsum).tanh();
        V c = fg * ld(s.c_prev + n * H) + ig * cc;
        T* act = s.act + n * d.GH + h0;
        ig.store(act, cnt);
        fg.store(act + H, cnt);
        og.store(act + 2 * H, cnt);
        cc.store(act + 3 * H, cnt);
        c.store(s.c_out + n * H + h0, cnt);
        (og * c.tanh()).store(h_out, cnt);
      } else {
        V rg = sigmoid(in(0) + ld(own));
        V zg = sigmoid(in(1) + ld(own + H));
        V q = s.b_hn ? gsum + ld(s.b_hn) : gsum;
        V nn = (in(2) + rg * q).tanh();
        V hp = ld(s.h_prev + n * H);
        T* act = s.act + n * d.GH + h0;
        rg.store(act, cnt);
        zg.store(act + H, cnt);
        nn.store(act + 2 * H, cnt);
        q.store(s.q_out + n * H + h0, cnt);
        (nn + zg * (hp - nn)).store(h_out, cnt);
      }
    }
  }
  });
}

template <typename T>
struct StepGrad {
  const T* dh_mm;      // (N, H) recurrent + upper-layer grads from the matrix product
  const T* dh_out;     // (N, H) grads of this step's output state
  T* carry_h;          // (N, H) GRU: in: d h from step t+1's direct path; out: for step t-1
  const T* dc_out;     // LSTM (N, H)
  T* carry_c;          // LSTM (N, H) in/out like carry_h
  const T* h_new;      // (N, H) state after the step (tanh)
  const T* h_prev;     // GRU
  const T* c_new;      // LSTM
  const T* c_prev;     // LSTM
  const T* act;        // (N, GH)
  const T* q;          // GRU
  const T* g;          // gated (N, L)
  const T* mem;        // gated: source 0's memory products for every target, row stride mem_row
  int64_t mem_row, mem_src;
  T* da;               // (N, KIN) input-product grads, row stride da_stride
  int64_t da_stride;
  T* er;               // R-part grads of step t for source 0, row stride er_row, source stride er_src
  int64_t er_row, er_src;
  T* dmem_save;        // GRU (N, H): d(gated sum + b_hn), for b_hn's grad
};

template <typename T>
void cell_backward(const Dims& d, int unit, bool gated, int64_t j, const StepGrad<T>& s) {
  using V = Vec<T>;
  const int64_t H = d.H, L = d.L;
  const V one(T(1));
  at::parallel_for(0, d.N, kRowGrain, [&](int64_t begin, int64_t end) {
  V dg[kMaxLayers];
  T g[kMaxLayers];
  for (int64_t n = begin; n < end; ++n) {
    for (int64_t i = 0; i < L; ++i) {
      dg[i] = V(T(0));
      g[i] = gated ? s.g[n * L + i] : T(1);
    }
    T* da = s.da + n * s.da_stride;
    auto er_of = [&](int64_t i) { return s.er + i * s.er_src + n * s.er_row; };
    const int64_t row = n * H;
    for (int64_t h0 = 0; h0 < H; h0 += V::size()) {
      const int64_t cnt = std::min<int64_t>(V::size(), H - h0);
      auto ld = [&](const T* p) { return V::loadu(p + h0, cnt); };
      V dh = ld(s.dh_mm + row) + ld(s.dh_out + row);
      V dmem;
      if (unit == kTanh) {
        V h = ld(s.h_new + row);
        dmem = dh * (one - h * h);
        dmem.store(da + h0, cnt);
      } else if (unit == kLstm) {
        const T* act = s.act + n * d.GH;
        V ig = ld(act), fg = ld(act + H), og = ld(act + 2 * H), cc = ld(act + 3 * H);
        V tc = ld(s.c_new + row).tanh();
        V dc = ld(s.dc_out + row) + ld(s.carry_c + row) + dh * og * (one - tc * tc);
        V di = dc * cc * ig * (one - ig);
        V df = dc * ld(s.c_prev + row) * fg * (one - fg);
        V dout = dh * tc * og * (one - og);
        dmem = dc * ig * (one - cc * cc);
        di.store(da + h0, cnt);
        df.store(da + H + h0, cnt);
        dout.store(da + 2 * H + h0, cnt);
        dmem.store(da + 3 * H + h0, cnt);
        (dc * fg).store(s.carry_c + row + h0, cnt);
        T* own = er_of(j);
        di.store(own + h0, cnt);
        df.store(own + H + h0, cnt);
        dout.store(own + 2 * H + h0, cnt);
      } else {
        dh = dh + ld(s.carry_h + row);
        const T* act = s.act + n * d.GH;
        V rg = ld(act), zg = ld(act + H), nn = ld(act + 2 * H);
        V dn = dh * (one - zg) * (one - nn * nn);
        V dr = dn * ld(s.q + row) * rg * (one - rg);
        V dz = dh * (ld(s.h_prev + row) - nn) * zg * (one - zg);
        dmem = dn * rg;
        dr.store(da + h0, cnt);
        dz.store(da + H + h0, cnt);
        dn.store(da + 2 * H + h0, cnt);
        (dh * zg).store(s.carry_h + row + h0, cnt);
        dmem.store(s.dmem_save + row + h0, cnt);
        T* own = er_of(j);
        dr.store(own + h0, cnt);
        dz.store(own + H + h0, cnt);
      }
      for (int64_t i = 0; i < L; ++i) {
        if (gated) dg[i] = dg[i] + dmem * ld(s.mem + i * s.mem_src + n * s.mem_row + j * H);
        (V(g[i]) * dmem).store(er_of(i) + d.FB + j * H + h0, cnt);
      }
    }
    if (gated) {
      for (int64_t i = 0; i < L; ++i) {
        T lanes[V::size()];
        dg[i].store(lanes);
        T total = T(0);
        for (int64_t k = 0; k < V::size(); ++k) total += lanes[k];
        const T dlogit = total * g[i] * (T(1) - g[i]);
        da[d.GH + i] = dlogit;
        for (int64_t src = 0; src < L; ++src) er_of(src)[d.GATE + j * L + i] = dlogit;
      }
    }
  }
  });
}

// Backward's largest buffer lives only for one call: keep it per thread and reuse it, since fresh
// memory of this size costs a page fault per 4 KiB on first touch.
thread_local Tensor cache;

Tensor workspace(int64_t numel, const at::TensorOptions& opt) {
  if (!cache.defined() || cache.numel() < numel || cache.scalar_type() != opt.dtype().toScalarType()) {
    cache = Tensor();  // free the old one first
    cache = at::empty({numel}, opt);
  }
  return cache.narrow(0, 0, numel);
}

int unit_code(const std::string& unit) {
  if (unit == "tanh") return kTanh;
  if (unit == "gru") return kGru;
  TORCH_CHECK(unit == "lstm", "unit: expected tanh, gru or lstm, got ", unit);
  return kLstm;
}

// Returns {hs (L, T+1, N, H), cs, acts (T, L, N, GH), qs, gates (T, L, N, L), mem (T, L, N, L*H)}.
std::vector<Tensor> forward(const std::string& unit_name, bool gated, const Tensor& a0,
                            const c10::optional<Tensor>& win, const c10::optional<Tensor>& bin,
                            const Tensor& wrec, const c10::optional<Tensor>& bhn, const Tensor& h0,
                            const c10::optional<Tensor>& c0, const c10::optional<Tensor>& masks) {
  const int unit = unit_code(unit_name);
  const Dims d(unit, gated, a0.size(0), a0.size(1), h0.size(0), h0.size(2));
  TORCH_CHECK(d.L <= kMaxLayers, "at most ", kMaxLayers, " layers");
  auto opt = a0.options();
  Tensor hs = at::empty({d.L, d.T + 1, d.N, d.H}, opt);
  hs.select(1, 0).copy_(h0);
  Tensor cs = unit == kLstm ? at::empty({d.L, d.T + 1, d.N, d.H}, opt) : at::empty({0}, opt);
  if (unit == kLstm) cs.select(1, 0).copy_(*c0);
  Tensor acts = unit != kTanh ? at::empty({d.T, d.L, d.N, d.GH}, opt) : at::empty({0}, opt);
  Tensor qs = unit == kGru ? at::empty({d.T, d.L, d.N, d.H}, opt) : at::empty({0}, opt);
  Tensor gates = gated ? at::empty({d.T, d.L, d.N, d.L}, opt) : at::empty({0}, opt);
  Tensor mem = gated ? at::empty({d.T, d.L, d.N, d.L * d.H}, opt) : at::empty({0}, opt);
  Tensor slots = at::empty({2, d.L, d.N, d.W}, opt);  // [A of layer j+1 | R of source j], two steps
  const bool dropout = masks.has_value() && masks->defined();
  std::vector<Tensor> wcomb;
  for (int64_t j = 0; j + 1 < d.L; ++j) wcomb.push_back(at::cat({(*win)[j].t(), wrec[j]}, 1).contiguous());
  for (int64_t j = 0; j < d.L; ++j) {
    Tensor out = slots[0][j].narrow(1, d.KIN, d.K);
    at::mm_out(out, h0[j], wrec[j]);
  }
  AT_DISPATCH_FLOATING_TYPES(a0.scalar_type(), "gf_forward", [&] {
    using T = scalar_t;
    for (int64_t t = 0; t < d.T; ++t) {
      Tensor cur = slots[t % 2], nxt = slots[(t + 1) % 2];
      if (gated) mem[t].copy_(cur.narrow(2, d.KIN + d.FB, d.L * d.H));
      for (int64_t j = 0; j < d.L; ++j) {
        StepIO<T> s{};
        if (j == 0) {
          s.a = a0[t].data_ptr<T>();
          s.a_stride = d.KIN;
        } else {
          s.a = nxt[j - 1].data_ptr<T>();
          s.a_stride = d.W;
          s.a_bias = (*bin)[j - 1].data_ptr<T>();
        }
        s.r = cur.data_ptr<T>() + d.KIN;
        s.r_row = d.W;
        s.r_src = d.N * d.W;
        s.h_prev = hs[j][t].data_ptr<T>();
        s.h_out = hs[j][t + 1].data_ptr<T>();
        if (unit == kLstm) {
          s.c_prev = cs[j][t].data_ptr<T>();
          s.c_out = cs[j][t + 1].data_ptr<T>();
        }
        if (unit != kTanh) s.act = acts[t][j].data_ptr<T>();
        if (unit == kGru) {
          s.q_out = qs[t][j].data_ptr<T>();
          s.b_hn = bhn.has_value() && bhn->defined() ? (*bhn)[j].data_ptr<T>() : nullptr;
        }
        if (gated) s.g_out = gates[t][j].data_ptr<T>();
        cell_forward<T>(d, unit, gated, j, s);
        // From the new state: layer j+1's input products now, layer j's recurrent products for t+1.
        Tensor h_new = hs[j][t + 1];
        if (j + 1 < d.L && !dropout) {
          Tensor out = nxt[j];
          at::mm_out(out, h_new, wcomb[j]);
        } else {
          if (t + 1 < d.T) {
            Tensor out = nxt[j].narrow(1, d.KIN, d.K);
            at::mm_out(out, h_new, wrec[j]);
          }
          if (j + 1 < d.L) {
            Tensor out = nxt[j].narrow(1, 0, d.KIN);
            at::mm_out(out, h_new * (*masks)[j][t], (*win)[j].t());
          }
        }
      }
    }
  });
  return {hs, cs, acts, qs, gates, mem};
}

// Returns {d_a0, d_win, d_bin, d_wrec, d_bhn, d_h0, d_c0}.
std::vector<Tensor> backward(const std::string& unit_name, bool gated, const Tensor& d_hs_in,
                             const c10::optional<Tensor>& d_cs_in, const c10::optional<Tensor>& win,
                             const Tensor& wrec, const c10::optional<Tensor>& masks, const Tensor& hs,
                             const Tensor& cs, const Tensor& acts, const Tensor& qs, const Tensor& gates,
                             const Tensor& mem) {
  const int unit = unit_code(unit_name);
  const Dims d(unit, gated, d_hs_in.size(0), d_hs_in.size(2), d_hs_in.size(1), d_hs_in.size(3));
  auto opt = d_hs_in.options();
  const bool dropout = masks.has_value() && masks->defined();
  Tensor d_hs = d_hs_in.contiguous();  // (T, L, N, H)
  Tensor d_cs = unit == kLstm ? d_cs_in->contiguous() : Tensor();
  // E[j, tau] = [dA of layer j+1 at step tau-1 | dR of source j at step tau], paired with hs[j, tau].
  Tensor e = workspace(d.L * (d.T + 1) * d.N * d.W, opt).view({d.L, d.T + 1, d.N, d.W});
  e.select(1, d.T).narrow(2, d.KIN, d.K).zero_();  // no step T
  e.select(1, 0).narrow(2, 0, d.KIN).zero_();      // no step -1
  e.select(0, d.L - 1).narrow(2, 0, d.KIN).zero_();  // no layer above the top
  Tensor d_a0 = at::empty({d.T, d.N, d.KIN}, opt);
  Tensor carry_h = at::zeros({d.L, d.N, d.H}, opt);
  Tensor carry_c = at::zeros({d.L, d.N, d.H}, opt);
  Tensor dmem = unit == kGru ? at::empty({d.T, d.L, d.N, d.H}, opt) : Tensor();
  Tensor dh_mm = at::empty({d.N, d.H}, opt);
  std::vector<Tensor> wcomb_t;  // (W, H): [W_in^{j+1} ; W_rec^{j T}]
  for (int64_t j = 0; j + 1 < d.L; ++j) wcomb_t.push_back(at::cat({(*win)[j], wrec[j].t()}, 0).contiguous());
  auto state_grad = [&](int64_t j, int64_t tau, int64_t t_mask) {
    Tensor rows = e[j][tau];
    if (j + 1 < d.L && !dropout) {
      at::mm_out(dh_mm, rows, wcomb_t[j]);
    } else {
      at::mm_out(dh_mm, rows.narrow(1, d.KIN, d.K), wrec[j].t());
      if (j + 1 < d.L && t_mask >= 0) dh_mm.add_(at::mm(rows.narrow(1, 0, d.KIN), (*win)[j]) * (*masks)[j][t_mask]);
    }
  };
  AT_DISPATCH_FLOATING_TYPES(d_hs.scalar_type(), "gf_backward", [&] {
    using T = scalar_t;
    for (int64_t t = d.T - 1; t >= 0; --t) {
      for (int64_t j = d.L - 1; j >= 0; --j) {
        state_grad(j, t + 1, t);
        StepGrad<T> s{};
        s.dh_mm = dh_mm.data_ptr<T>();
        s.dh_out = d_hs[t][j].data_ptr<T>();
        s.carry_h = carry_h[j].data_ptr<T>();
        s.h_new = hs[j][t + 1].data_ptr<T>();
        if (unit == kGru) {
          s.h_prev = hs[j][t].data_ptr<T>();
          s.q = qs[t][j].data_ptr<T>();
          s.dmem_save = dmem[t][j].data_ptr<T>();
        }
        if (unit == kLstm) {
          s.dc_out = d_cs[t][j].data_ptr<T>();
          s.carry_c = carry_c[j].data_ptr<T>();
          s.c_new = cs[j][t + 1].data_ptr<T>();
          s.c_prev = cs[j][t].data_ptr<T>();
        }
        if (unit != kTanh) s.act = acts[t][j].data_ptr<T>();
        if (gated) {
          s.g = gates[t][j].data_ptr<T>();
          s.mem = mem[t].data_ptr<T>();
          s.mem_row = d.L * d.H;
          s.mem_src = d.N * d.L * d.H;
        }
        if (j == 0) {
          s.da = d_a0[t].data_ptr<T>();
          s.da_stride = d.KIN;
        } else {
          s.da = e[j - 1][t + 1].data_ptr<T>();
          s.da_stride = d.W;
        }
        s.er = e.data_ptr<T>() + t * d.N * d.W + d.KIN;
        s.er_row = d.W;
        s.er_src = (d.T + 1) * d.N * d.W;
        cell_backward<T>(d, unit, gated, j, s);
      }
    }
  });
  // Initial states: what step 0 read from them.
  Tensor d_h0 = at::empty({d.L, d.N, d.H}, opt);
  for (int64_t j = 0; j < d.L; ++j) {
    state_grad(j, 0, -1);
    d_h0[j].copy_(unit == kGru ? dh_mm + carry_h[j] : dh_mm);
  }
  // Weight gradients: one product over all steps per layer.
  Tensor d_wrec = at::empty_like(wrec);
  Tensor d_win = d.L > 1 ? at::empty_like(*win) : Tensor();
  Tensor d_bin = d.L > 1 ? at::empty({d.L - 1, d.KIN}, opt) : Tensor();
  for (int64_t j = 0; j < d.L; ++j) {
    Tensor states = hs[j].reshape({(d.T + 1) * d.N, d.H});
    Tensor ej = e[j].reshape({(d.T + 1) * d.N, d.W});
    if (j + 1 < d.L && !dropout) {
      Tensor both = at::mm(states.t(), ej);  // (H, W)
      d_win[j].copy_(both.narrow(1, 0, d.KIN).t());
      d_wrec[j].copy_(both.narrow(1, d.KIN, d.K));
    } else {
      Tensor out = d_wrec[j];
      at::mm_out(out, states.t(), ej.narrow(1, d.KIN, d.K));
      if (j + 1 < d.L) {
        Tensor below = (hs[j].narrow(0, 1, d.T) * (*masks)[j]).reshape({d.T * d.N, d.H});
        Tensor da = e[j].narrow(0, 1, d.T).narrow(2, 0, d.KIN).reshape({d.T * d.N, d.KIN});
        Tensor out_win = d_win[j];
        at::mm_out(out_win, da.t(), below);
      }
    }
    if (j + 1 < d.L) d_bin[j].copy_(e[j].narrow(0, 1, d.T).narrow(2, 0, d.KIN).sum({0, 1}));
  }
  Tensor d_bhn = unit == kGru ? dmem.sum({0, 2}) : Tensor();
  Tensor d_c0 = unit == kLstm ? carry_c : Tensor();
  return {d_a0, d_win, d_bin, d_wrec, d_bhn, d_h0, d_c0};
}

void free_workspace() { cache = Tensor(); }

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "GF-RNN stack forward through time (CPU)");
  m.def("backward", &backward, "GF-RNN stack backward through time (CPU)");
  m.def("free_workspace", &free_workspace, "free this thread's backward workspace");
}

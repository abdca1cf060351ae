// Front-to-back compositing of projected Gaussians on the CPU, forward and backward: gsplat 1.5.3's
// RasterizeToPixels3DGSFwd.cu / Bwd.cu, one tile of pixels per task, tasks taken dynamically by
// torch's threads (the most crowded tiles first). Inside a tile, pixels go eight at a time through
// GCC/Clang vector types (AVX, or two SSE registers), Gaussians one after another; a tile stops when
// every pixel is opaque.
//
// Maths (per pixel, Gaussians front to back): d = mean - pixel centre, sigma = (a dx^2 + c dy^2) / 2
// + b dx dy, alpha = min(0.999, opacity exp(-sigma)); skipped when sigma < 0 or alpha < 1/255; the
// pixel stops before the Gaussian that would take its transmittance T to <= 1e-4. The backward walks
// back to front from each pixel's last blended Gaussian, recovering T by dividing by (1 - alpha), as
// gsplat does. See reshoot/splat/rasterize.py (the torch twin these are tested against) and
// docs/rasterizer.md.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

namespace {

constexpr int kLanes = 8;
typedef float vf __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(kLanes * sizeof(int32_t))));

constexpr float kAlphaMin = 1.0f / 255.0f;
constexpr float kAlphaMax = 0.999f;
constexpr float kMinTransmittance = 1e-4f;
constexpr int kParams = 6;  // table columns before the colour: mean x, y, conic a, b, c, opacity

inline vf splat(float x) { return vf{} + x; }

inline float lane_sum(vf v) {
  float s = 0.0f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

// exp(x) for x >= -60, to about 1.2e-7 relative (float's own rounding); below -60 it gives e^-60, far below
// any alpha that counts, and never a subnormal (slow). 2^(x log2 e) as an integer power (the exponent bits)
// times exp of a remainder in [-ln2/2, ln2/2] (Taylor to degree 6).
inline vf vexp(vf x) {
  const vf lo = splat(-60.0f);
  x = x < lo ? lo : x;
  const vf t = x * 1.4426950408889634f;
  const vf n = (t + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23)
  const vf f = (t - n) * 0.6931471805599453f;
  vf p = f * (1.0f / 720.0f) + 1.0f / 120.0f;
  p = p * f + 1.0f / 24.0f;
  p = p * f + 1.0f / 6.0f;
  p = p * f + 0.5f;
  p = p * f + 1.0f;
  p = p * f + 1.0f;
  const vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
  return p * reinterpret_cast<const vf&>(bits);
}

struct Layout {
  int64_t tile_size, tile_width, tiles_per_image, channels;
  int64_t pixels() const { return tile_size * tile_size; }
  int64_t groups() const { return (pixels() + kLanes - 1) / kLanes; }  // pixels in groups of kLanes (padded)
};

// Runs body(task) for task in [0, n) on torch's threads, each taking the next task when free.
template <typename Body>
void for_each_task(int64_t n, const Body& body) {
  std::atomic<int64_t> next{0};
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n));
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; ++w) {
      for (int64_t task = next.fetch_add(1); task < n; task = next.fetch_add(1)) body(task);
    }
  });
}

// A tile's Gaussians, gathered front to back into columns (structure of arrays).
struct TileGaussians {
  std::vector<float> mx, my, a, b, c, opacity, color;  // color: [K, D]

  void gather(const float* table, const int64_t* ids, int64_t count, int64_t channels) {
    for (auto* v : {&mx, &my, &a, &b, &c, &opacity}) v->resize(count);
    color.resize(count * channels);
    const int64_t stride = kParams + channels;
    for (int64_t k = 0; k < count; ++k) {
      const float* row = table + ids[k] * stride;
      mx[k] = row[0], my[k] = row[1], a[k] = row[2], b[k] = row[3], c[k] = row[4], opacity[k] = row[5];
      std::copy(row + kParams, row + stride, color.begin() + k * channels);
    }
  }
};

// Pixel centres of a tile (image coordinates, +0.5) in groups of kLanes; `real` is -1 on the tile's pixels
// and 0 on the padding of the last group.
void tile_pixels(int64_t key, const Layout& l, std::vector<vf>& px, std::vector<vf>& py, std::vector<vi>& real) {
  const int64_t tile = key % l.tiles_per_image, ts = l.tile_size;
  const float x0 = static_cast<float>((tile % l.tile_width) * ts) + 0.5f;
  const float y0 = static_cast<float>((tile / l.tile_width) * ts) + 0.5f;
  px.assign(l.groups(), vf{}), py.assign(l.groups(), vf{}), real.assign(l.groups(), vi{});
  for (int64_t p = 0; p < l.pixels(); ++p) {
    px[p / kLanes][p % kLanes] = x0 + static_cast<float>(p % ts);
    py[p / kLanes][p % kLanes] = y0 + static_cast<float>(p / ts);
    real[p / kLanes][p % kLanes] = -1;
  }
}

}  // namespace

// Forward. table [M, 6 + D] float32 (mean x, y, conic a, b, c, opacity, colour); flatten_ids [n_isects]
// entry ids sorted by (image, tile, depth); tile_keys / tile_starts / tile_counts [T] the non-empty tiles.
// Returns colours [n_tiles, P, D], alphas [n_tiles, P, 1] (tile order, P = tile_size^2) and last [n_tiles, P]
// int32: how many of the tile's Gaussians each pixel went through up to its last blended one.
std::vector<torch::Tensor> composite_forward(torch::Tensor table, torch::Tensor flatten_ids, torch::Tensor tile_keys,
                                             torch::Tensor tile_starts, torch::Tensor tile_counts, int64_t n_tiles,
                                             int64_t tile_size, int64_t tile_width, int64_t tiles_per_image) {
  TORCH_CHECK(table.dtype() == torch::kFloat32 && table.is_contiguous(), "table must be contiguous float32");
  const Layout l{tile_size, tile_width, tiles_per_image, table.size(1) - kParams};
  const int64_t P = l.pixels(), G = l.groups(), D = l.channels;
  auto colors = torch::zeros({n_tiles, P, D}, table.options());
  auto alphas = torch::zeros({n_tiles, P, 1}, table.options());
  auto last = torch::zeros({n_tiles, P}, table.options().dtype(torch::kInt32));
  const float* tab = table.data_ptr<float>();
  const int64_t* ids = flatten_ids.data_ptr<int64_t>();
  const int64_t *keys = tile_keys.data_ptr<int64_t>(), *starts = tile_starts.data_ptr<int64_t>(),
                *counts = tile_counts.data_ptr<int64_t>();
  float *out_c = colors.data_ptr<float>(), *out_a = alphas.data_ptr<float>();
  int32_t* out_last = last.data_ptr<int32_t>();

  for_each_task(tile_keys.size(0), [&](int64_t t) {
    thread_local TileGaussians g;
    thread_local std::vector<vf> px, py, T, acc;
    thread_local std::vector<vi> real, done, last_k;
    const int64_t K = counts[t], key = keys[t];
    g.gather(tab, ids + starts[t], K, D);
    tile_pixels(key, l, px, py, real);
    T.assign(G, splat(1.0f)), acc.assign(G * D, vf{}), last_k.assign(G, vi{});
    done = real;
    int64_t n_done = 0;
    for (auto& d : done) d = ~d;  // padding counts as done
    const vf alpha_max = splat(kAlphaMax), alpha_min = splat(kAlphaMin), t_min = splat(kMinTransmittance);
    for (int32_t k = 0; k < K && n_done < P; ++k) {
      const float mx = g.mx[k], my = g.my[k], a = g.a[k], b = g.b[k], c = g.c[k], op = g.opacity[k];
      const float* ck = g.color.data() + k * D;
      vi stopped{};
      for (int64_t v = 0; v < G; ++v) {
        const vf dx = mx - px[v], dy = my - py[v];
        const vf sigma = 0.5f * (a * dx * dx + c * dy * dy) + b * dx * dy;
        vf alpha = op * vexp(-sigma);
        alpha = alpha > alpha_max ? alpha_max : alpha;
        const vi blend = ~done[v] & (sigma >= vf{}) & (alpha >= alpha_min);
        const vf next_T = T[v] * (1.0f - alpha);
        const vi stop = blend & (next_T <= t_min);
        const vi use = blend & ~stop;
        done[v] |= stop;
        stopped -= stop;
        const vf w = use ? alpha * T[v] : vf{};
        T[v] = use ? next_T : T[v];
        last_k[v] = use ? vi{} + (k + 1) : last_k[v];
        for (int64_t d = 0; d < D; ++d) acc[d * G + v] += w * ck[d];
      }
      for (int i = 0; i < kLanes; ++i) n_done += stopped[i];
    }
    for (int64_t p = 0; p < P; ++p) {
      const int64_t v = p / kLanes, i = p % kLanes;
      for (int64_t d = 0; d < D; ++d) out_c[(key * P + p) * D + d] = acc[d * G + v][i];
      out_a[key * P + p] = 1.0f - T[v][i];
      out_last[key * P + p] = last_k[v][i];
    }
  });
  return {colors, alphas, last};
}

// Backward. v_colors [n_tiles, P, D] and v_alphas [n_tiles, P, 1] are the gradients of the outputs; alphas
// and last come from the forward. Returns per intersection [n_isects, 6 + D]: d loss / d (mean x, y, conic
// a, b, c, opacity, colour), and, when absgrad, [n_isects, 2]: sums over pixels of |d loss / d mean|.
std::vector<torch::Tensor> composite_backward(torch::Tensor table, torch::Tensor flatten_ids, torch::Tensor tile_keys,
                                              torch::Tensor tile_starts, torch::Tensor tile_counts,
                                              torch::Tensor alphas, torch::Tensor last, torch::Tensor v_colors,
                                              torch::Tensor v_alphas, int64_t tile_size, int64_t tile_width,
                                              int64_t tiles_per_image, bool absgrad) {
  TORCH_CHECK(table.dtype() == torch::kFloat32 && table.is_contiguous(), "table must be contiguous float32");
  v_colors = v_colors.contiguous(), v_alphas = v_alphas.contiguous();
  const Layout l{tile_size, tile_width, tiles_per_image, table.size(1) - kParams};
  const int64_t P = l.pixels(), G = l.groups(), D = l.channels, n_isects = flatten_ids.size(0);
  auto grads = torch::zeros({n_isects, kParams + D}, table.options());
  auto abs_grads = torch::zeros({absgrad ? n_isects : 0, 2}, table.options());
  const float* tab = table.data_ptr<float>();
  const int64_t* ids = flatten_ids.data_ptr<int64_t>();
  const int64_t *keys = tile_keys.data_ptr<int64_t>(), *starts = tile_starts.data_ptr<int64_t>(),
                *counts = tile_counts.data_ptr<int64_t>();
  const float *in_a = alphas.data_ptr<float>(), *v_c = v_colors.data_ptr<float>(), *v_a = v_alphas.data_ptr<float>();
  const int32_t* in_last = last.data_ptr<int32_t>();
  float *out_g = grads.data_ptr<float>(), *out_abs = absgrad ? abs_grads.data_ptr<float>() : nullptr;

  for_each_task(tile_keys.size(0), [&](int64_t t) {
    thread_local TileGaussians g;
    thread_local std::vector<vf> px, py, T, T_final, va, vo, buffer, s_color;
    thread_local std::vector<vi> real, last_k;
    const int64_t K = counts[t], key = keys[t];
    int32_t k_end = 0;
    for (int64_t p = 0; p < P; ++p) k_end = std::max(k_end, in_last[key * P + p]);
    if (k_end == 0) return;
    g.gather(tab, ids + starts[t], std::min<int64_t>(K, k_end), D);
    tile_pixels(key, l, px, py, real);
    T.assign(G, vf{}), va.assign(G, vf{}), vo.assign(G * D, vf{}), buffer.assign(G * D, vf{});
    last_k.assign(G, vi{});
    for (int64_t p = 0; p < P; ++p) {  // padding keeps T = 0, no gradient and last = 0: never used
      const int64_t v = p / kLanes, i = p % kLanes;
      T[v][i] = 1.0f - in_a[key * P + p];
      va[v][i] = v_a[key * P + p];
      last_k[v][i] = in_last[key * P + p];
      for (int64_t d = 0; d < D; ++d) vo[d * G + v][i] = v_c[(key * P + p) * D + d];
    }
    T_final = T;
    const vf alpha_max = splat(kAlphaMax), alpha_min = splat(kAlphaMin), one = splat(1.0f);
    for (int32_t k = k_end - 1; k >= 0; --k) {
      const float mx = g.mx[k], my = g.my[k], a = g.a[k], b = g.b[k], c = g.c[k], op = g.opacity[k];
      const float* ck = g.color.data() + k * D;
      float* gk = out_g + (starts[t] + k) * (kParams + D);
      vf s_mx{}, s_my{}, s_a{}, s_b{}, s_c{}, s_op{}, s_ax{}, s_ay{};
      s_color.assign(D, vf{});
      for (int64_t v = 0; v < G; ++v) {
        const vf dx = mx - px[v], dy = my - py[v];
        const vf sigma = 0.5f * (a * dx * dx + c * dy * dy) + b * dx * dy;
        const vf vis = vexp(-sigma);
        const vf raw = op * vis;
        const vf alpha = raw > alpha_max ? alpha_max : raw;
        const vi used = (vi{} + k < last_k[v]) & (sigma >= vf{}) & (alpha >= alpha_min);
        const vi live = used & (raw <= alpha_max);  // a clamped alpha passes no gradient to sigma, opacity
        const vf ra = used ? one / (one - alpha) : one;
        T[v] *= ra;
        const vf fac = used ? alpha * T[v] : vf{};
        vf v_alpha = T_final[v] * ra * va[v];
        for (int64_t d = 0; d < D; ++d) {
          const vf vo_d = vo[d * G + v];
          vf& buf = buffer[d * G + v];
          v_alpha += (ck[d] * T[v] - buf * ra) * vo_d;
          buf += ck[d] * fac;
          s_color[d] += fac * vo_d;
        }
        const vf v_sigma = live ? -op * vis * v_alpha : vf{};
        const vf gx = v_sigma * (a * dx + b * dy), gy = v_sigma * (b * dx + c * dy);
        s_mx += gx, s_my += gy;
        s_a += 0.5f * v_sigma * dx * dx, s_b += v_sigma * dx * dy, s_c += 0.5f * v_sigma * dy * dy;
        s_op += live ? vis * v_alpha : vf{};
        s_ax += gx < vf{} ? -gx : gx, s_ay += gy < vf{} ? -gy : gy;
      }
      for (int64_t d = 0; d < D; ++d) gk[kParams + d] = lane_sum(s_color[d]);
      gk[0] = lane_sum(s_mx), gk[1] = lane_sum(s_my), gk[2] = lane_sum(s_a), gk[3] = lane_sum(s_b);
      gk[4] = lane_sum(s_c), gk[5] = lane_sum(s_op);
      if (out_abs != nullptr) {
        out_abs[(starts[t] + k) * 2] = lane_sum(s_ax), out_abs[(starts[t] + k) * 2 + 1] = lane_sum(s_ay);
      }
    }
  });
  return {grads, abs_grads};
}

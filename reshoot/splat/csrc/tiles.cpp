// Tile intersections of projected Gaussians on the CPU: gsplat's isect_tiles + a stable sort by tile, as
// reshoot/splat/rasterize.py's plan_tiles does in torch (its twin). Entries come in depth order; each is
// listed in every tile of its radius box that its alpha >= 1/255 ellipse reaches (the twin's _reaches_tile
// test), and a counting sort by (image, tile) keeps the depth order within each tile.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace {

// Whether some pixel centre of the tile [x0, x1] x [y0, y1] gets alpha >= 1/255 from a Gaussian at (mx, my) with
// conic (a, b, c): sigma = (p - m)^T conic (p - m) / 2 minimised over the box against `most` = ln(255 opacity).
bool reaches(float mx, float my, float a, float b, float c, float most, float x0, float y0, float x1, float y1) {
  if (mx >= x0 && mx <= x1 && my >= y0 && my <= y1) return 0.0f <= most;
  float least = std::numeric_limits<float>::infinity();
  const float b_c = b / c, b_a = b / a;
  for (const float x : {x0, x1}) {  // on a vertical edge sigma is least at y = my - b / c (x - mx), kept on it
    const float dx = x - mx;
    const float dy = std::min(std::max(my - b_c * dx, y0), y1) - my;
    least = std::min(least, 0.5f * (a * dx * dx + c * dy * dy) + b * dx * dy);
  }
  for (const float y : {y0, y1}) {
    const float dy = y - my;
    const float dx = std::min(std::max(mx - b_a * dy, x0), x1) - mx;
    least = std::min(least, 0.5f * (a * dx * dx + c * dy * dy) + b * dx * dy);
  }
  return least <= most;
}

}  // namespace

// order [K] int64: the entries with a non-empty tile box, front to back; means2d [M, 2], conics [M, 3],
// opacities [M] float32; lo [M, 2] and span [M, 2] int64: each entry's first tile and box size in tiles;
// image_ids [M] int64. Returns flatten_ids [n] and isect_keys [n] (int64), sorted by key = image * tiles + tile,
// depth order within a key.
std::vector<torch::Tensor> tile_intersections(torch::Tensor order, torch::Tensor means2d, torch::Tensor conics,
                                              torch::Tensor opacities, torch::Tensor lo, torch::Tensor span,
                                              torch::Tensor image_ids, int64_t n_images, int64_t tile_width,
                                              int64_t tile_height, int64_t tile_size) {
  for (const auto& t : {means2d, conics, opacities})
    TORCH_CHECK(t.dtype() == torch::kFloat32 && t.is_contiguous(), "means2d, conics, opacities: contiguous float32");
  for (const auto& t : {order, lo, span, image_ids})
    TORCH_CHECK(t.dtype() == torch::kInt64 && t.is_contiguous(), "order, lo, span, image_ids: contiguous int64");
  const int64_t K = order.size(0), n_tiles = tile_width * tile_height, n_keys = n_images * n_tiles;
  const int64_t* ord = order.data_ptr<int64_t>();
  const float *m = means2d.data_ptr<float>(), *cn = conics.data_ptr<float>(), *op = opacities.data_ptr<float>();
  const int64_t *lo_p = lo.data_ptr<int64_t>(), *span_p = span.data_ptr<int64_t>(), *img = image_ids.data_ptr<int64_t>();
  const float ts = static_cast<float>(tile_size);
  // pass 1: which (entry, tile) pairs are kept, in depth order
  std::vector<int64_t> keys, entries;
  keys.reserve(4 * K), entries.reserve(4 * K);
  for (int64_t k = 0; k < K; ++k) {
    const int64_t e = ord[k];
    const float mx = m[2 * e], my = m[2 * e + 1], a = cn[3 * e], b = cn[3 * e + 1], c = cn[3 * e + 2];
    const float most = std::log(255.0f * std::max(op[e], 1e-30f)) + 1e-3f;
    const int64_t base = img[e] * n_tiles;
    for (int64_t ty = lo_p[2 * e + 1]; ty < lo_p[2 * e + 1] + span_p[2 * e + 1]; ++ty) {
      const float y0 = static_cast<float>(ty) * ts + 0.5f, y1 = y0 + (ts - 1.0f);
      for (int64_t tx = lo_p[2 * e]; tx < lo_p[2 * e] + span_p[2 * e]; ++tx) {
        const float x0 = static_cast<float>(tx) * ts + 0.5f, x1 = x0 + (ts - 1.0f);
        if (reaches(mx, my, a, b, c, most, x0, y0, x1, y1)) {
          keys.push_back(base + ty * tile_width + tx);
          entries.push_back(e);
        }
      }
    }
  }
  // pass 2: counting sort by key, stable
  std::vector<int64_t> start(n_keys + 1, 0);
  for (const int64_t key : keys) ++start[key + 1];
  for (int64_t i = 0; i < n_keys; ++i) start[i + 1] += start[i];
  const int64_t n = static_cast<int64_t>(keys.size());
  auto flatten_ids = torch::empty({n}, order.options());
  auto isect_keys = torch::empty({n}, order.options());
  int64_t *out_ids = flatten_ids.data_ptr<int64_t>(), *out_keys = isect_keys.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t slot = start[keys[i]]++;
    out_ids[slot] = entries[i], out_keys[slot] = keys[i];
  }
  return {flatten_ids, isect_keys};
}

// The Python module of reshoot's compiled CPU kernels (see reshoot/splat/kernels.py).
#include <torch/extension.h>

#include <vector>

std::vector<torch::Tensor> composite_forward(torch::Tensor table, torch::Tensor flatten_ids, torch::Tensor tile_keys,
                                             torch::Tensor tile_starts, torch::Tensor tile_counts, int64_t n_tiles,
                                             int64_t tile_size, int64_t tile_width, int64_t tiles_per_image);
std::vector<torch::Tensor> composite_backward(torch::Tensor table, torch::Tensor flatten_ids, torch::Tensor tile_keys,
                                              torch::Tensor tile_starts, torch::Tensor tile_counts,
                                              torch::Tensor alphas, torch::Tensor last, torch::Tensor v_colors,
                                              torch::Tensor v_alphas, int64_t tile_size, int64_t tile_width,
                                              int64_t tiles_per_image, bool absgrad);
std::vector<torch::Tensor> project_forward(torch::Tensor means, torch::Tensor quats, torch::Tensor scales,
                                           torch::Tensor viewmats, torch::Tensor Ks, int64_t width, int64_t height,
                                           double near_plane, double far_plane);
std::vector<torch::Tensor> project_backward(torch::Tensor means, torch::Tensor quats, torch::Tensor scales,
                                            torch::Tensor viewmats, torch::Tensor Ks, int64_t width, int64_t height,
                                            double near_plane, double far_plane, torch::Tensor v_means2d,
                                            torch::Tensor v_cov2d, torch::Tensor v_depths);

std::vector<torch::Tensor> tile_intersections(torch::Tensor order, torch::Tensor means2d, torch::Tensor conics,
                                              torch::Tensor opacities, torch::Tensor lo, torch::Tensor span,
                                              torch::Tensor image_ids, int64_t n_images, int64_t tile_width,
                                              int64_t tile_height, int64_t tile_size);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "reshoot's compiled CPU kernels: EWA projection, tile intersections and front-to-back compositing";
  m.def("composite_forward", &composite_forward, "front-to-back compositing of tiles (forward)");
  m.def("composite_backward", &composite_backward, "front-to-back compositing of tiles (backward)");
  m.def("tile_intersections", &tile_intersections, "Gaussian-tile intersections sorted by tile, depth order kept");
  m.def("project_forward", &project_forward, "EWA projection of 3D Gaussians into pinhole cameras (forward)");
  m.def("project_backward", &project_backward, "EWA projection of 3D Gaussians into pinhole cameras (backward)");
}

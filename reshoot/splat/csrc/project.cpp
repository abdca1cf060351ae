// EWA projection of 3D Gaussians into pinhole cameras on the CPU, forward and backward, as gsplat 1.5.3's
// torch twins (gsplat/cuda/_torch_impl.py: _quat_scale_to_covar_preci, _world_to_cam, _persp_proj) that
// reshoot's rasterizer otherwise differentiates with autograd. One Gaussian per task over torch's threads,
// every camera in turn, so the backward sums its cameras without atomics.
//
// Per Gaussian and camera: R from the normalised quaternion (wxyz), Sigma = (R S)(R S)^T, camera-space
// p = Rc m + tc and Sigma_c = Rc Sigma Rc^T; outside [near, far] p is taken as (0, 0, 1) (the rasterizer
// culls those; no gradient flows through them but the depth's). means2d = (K[:2] p) / z; the Jacobian
// clamps x/z and y/z to 1.3x the field of view; cov2d = J Sigma_c J^T, returned as (xx, xy, yy).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

struct Mat3 {
  float m[3][3];
};

Mat3 quat_to_rotmat(float w, float x, float y, float z) {
  return {{{1.f - 2.f * (y * y + z * z), 2.f * (x * y - w * z), 2.f * (x * z + w * y)},
           {2.f * (x * y + w * z), 1.f - 2.f * (x * x + z * z), 2.f * (y * z - w * x)},
           {2.f * (x * z - w * y), 2.f * (y * z + w * x), 1.f - 2.f * (x * x + y * y)}}};
}

// A Gaussian's normalised quaternion (F.normalize: divided by max(|q|, 1e-12)), its norm, R, M = R S, Sigma.
struct Shape {
  float q[4], norm;
  Mat3 R, M, cov;
};

Shape shape_of(const float* quat, const float* scale) {
  Shape s;
  const float n2 = quat[0] * quat[0] + quat[1] * quat[1] + quat[2] * quat[2] + quat[3] * quat[3];
  s.norm = std::max(std::sqrt(n2), 1e-12f);
  for (int i = 0; i < 4; ++i) s.q[i] = quat[i] / s.norm;
  s.R = quat_to_rotmat(s.q[0], s.q[1], s.q[2], s.q[3]);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) s.M.m[i][j] = s.R.m[i][j] * scale[j];
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) {
      float v = 0.f;
      for (int j = 0; j < 3; ++j) v += s.M.m[i][j] * s.M.m[k][j];
      s.cov.m[i][k] = v;
    }
  return s;
}

// One camera: its rotation, translation, intrinsics and the Jacobian's clamping limits.
struct Camera {
  float R[3][3], t[3], K[2][3], lim_x_neg, lim_x_pos, lim_y_neg, lim_y_pos;
};

Camera camera_of(const float* viewmat, const float* K, int64_t width, int64_t height) {
  Camera c;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) c.R[i][j] = viewmat[i * 4 + j];
    c.t[i] = viewmat[i * 4 + 3];
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) c.K[i][j] = K[i * 3 + j];
  const float fx = K[0], fy = K[4], cx = K[2], cy = K[5];
  const float tan_fovx = 0.5f * width / fx, tan_fovy = 0.5f * height / fy;
  c.lim_x_pos = (width - cx) / fx + 0.3f * tan_fovx, c.lim_x_neg = cx / fx + 0.3f * tan_fovx;
  c.lim_y_pos = (height - cy) / fy + 0.3f * tan_fovy, c.lim_y_neg = cy / fy + 0.3f * tan_fovy;
  return c;
}

// Camera-space quantities of one Gaussian in one camera (forward values the backward also needs).
struct InCamera {
  float p[3];  // camera-space mean, or (0, 0, 1) outside [near, far]
  float depth;  // the real camera z
  bool in_depth;
  float u, v;  // clamped x/z, y/z
  bool u_free, v_free;  // not clamped (the clamp passes gradient)
  float J[2][3];
  float cov_c[3][3];
};

InCamera in_camera(const Camera& c, const float* mean, const Mat3& cov, float near_plane, float far_plane) {
  InCamera g;
  float p[3];
  for (int i = 0; i < 3; ++i) p[i] = c.R[i][0] * mean[0] + c.R[i][1] * mean[1] + c.R[i][2] * mean[2] + c.t[i];
  g.depth = p[2];
  g.in_depth = p[2] >= near_plane && p[2] <= far_plane;
  if (!g.in_depth) p[0] = 0.f, p[1] = 0.f, p[2] = 1.f;
  std::copy(p, p + 3, g.p);
  float RS[3][3];  // Rc Sigma
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) RS[i][k] = c.R[i][0] * cov.m[0][k] + c.R[i][1] * cov.m[1][k] + c.R[i][2] * cov.m[2][k];
  for (int i = 0; i < 3; ++i)
    for (int l = 0; l < 3; ++l) g.cov_c[i][l] = RS[i][0] * c.R[l][0] + RS[i][1] * c.R[l][1] + RS[i][2] * c.R[l][2];
  const float z = p[2], xz = p[0] / z, yz = p[1] / z;
  g.u = std::min(std::max(xz, -c.lim_x_neg), c.lim_x_pos);
  g.v = std::min(std::max(yz, -c.lim_y_neg), c.lim_y_pos);
  g.u_free = xz >= -c.lim_x_neg && xz <= c.lim_x_pos;
  g.v_free = yz >= -c.lim_y_neg && yz <= c.lim_y_pos;
  const float fx = c.K[0][0], fy = c.K[1][1];
  g.J[0][0] = fx / z, g.J[0][1] = 0.f, g.J[0][2] = -fx * g.u / z;
  g.J[1][0] = 0.f, g.J[1][1] = fy / z, g.J[1][2] = -fy * g.v / z;
  return g;
}

template <typename Body>
void for_each_gaussian(int64_t n, const Body& body) {
  at::parallel_for(0, n, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) body(i);
  });
}

void check(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.dtype() == torch::kFloat32 && t.is_contiguous() && t.device().is_cpu(), name,
              " must be a contiguous float32 CPU tensor");
}

}  // namespace

// Forward. means [N, 3], quats [N, 4] (wxyz), scales [N, 3] (standard deviations), viewmats [C, 4, 4]
// (world to camera), Ks [C, 3, 3]. Returns means2d [C, N, 2], cov2d [C, N, 3] (xx, xy, yy), depths [C, N].
std::vector<torch::Tensor> project_forward(torch::Tensor means, torch::Tensor quats, torch::Tensor scales,
                                           torch::Tensor viewmats, torch::Tensor Ks, int64_t width, int64_t height,
                                           double near_plane, double far_plane) {
  for (auto& [t, name] : {std::pair{means, "means"}, {quats, "quats"}, {scales, "scales"}, {viewmats, "viewmats"},
                          {Ks, "Ks"}})
    check(t, name);
  const int64_t N = means.size(0), C = viewmats.size(0);
  auto means2d = torch::empty({C, N, 2}, means.options());
  auto cov2d = torch::empty({C, N, 3}, means.options());
  auto depths = torch::empty({C, N}, means.options());
  std::vector<Camera> cams;
  for (int64_t c = 0; c < C; ++c)
    cams.push_back(camera_of(viewmats.data_ptr<float>() + c * 16, Ks.data_ptr<float>() + c * 9, width, height));
  const float *m = means.data_ptr<float>(), *q = quats.data_ptr<float>(), *s = scales.data_ptr<float>();
  float *o_m = means2d.data_ptr<float>(), *o_c = cov2d.data_ptr<float>(), *o_d = depths.data_ptr<float>();
  const float near_f = static_cast<float>(near_plane), far_f = static_cast<float>(far_plane);
  for_each_gaussian(N, [&](int64_t n) {
    const Shape shape = shape_of(q + n * 4, s + n * 3);
    for (int64_t c = 0; c < C; ++c) {
      const Camera& cam = cams[c];
      const InCamera g = in_camera(cam, m + n * 3, shape.cov, near_f, far_f);
      float JS[2][3];  // J Sigma_c
      for (int i = 0; i < 2; ++i)
        for (int k = 0; k < 3; ++k) JS[i][k] = g.J[i][0] * g.cov_c[0][k] + g.J[i][1] * g.cov_c[1][k] + g.J[i][2] * g.cov_c[2][k];
      float cov[2][2];
      for (int i = 0; i < 2; ++i)
        for (int l = 0; l < 2; ++l) cov[i][l] = JS[i][0] * g.J[l][0] + JS[i][1] * g.J[l][1] + JS[i][2] * g.J[l][2];
      const int64_t cn = c * N + n;
      for (int i = 0; i < 2; ++i)
        o_m[cn * 2 + i] = (cam.K[i][0] * g.p[0] + cam.K[i][1] * g.p[1] + cam.K[i][2] * g.p[2]) / g.p[2];
      o_c[cn * 3] = cov[0][0], o_c[cn * 3 + 1] = 0.5f * (cov[0][1] + cov[1][0]), o_c[cn * 3 + 2] = cov[1][1];
      o_d[cn] = g.depth;
    }
  });
  return {means2d, cov2d, depths};
}

// Backward: the gradients of means2d [C, N, 2], cov2d [C, N, 3] (xx, xy, yy; xy stands for both off-diagonal
// entries) and depths [C, N] to means [N, 3], quats [N, 4] and scales [N, 3].
std::vector<torch::Tensor> project_backward(torch::Tensor means, torch::Tensor quats, torch::Tensor scales,
                                            torch::Tensor viewmats, torch::Tensor Ks, int64_t width, int64_t height,
                                            double near_plane, double far_plane, torch::Tensor v_means2d,
                                            torch::Tensor v_cov2d, torch::Tensor v_depths) {
  v_means2d = v_means2d.contiguous(), v_cov2d = v_cov2d.contiguous(), v_depths = v_depths.contiguous();
  for (auto& [t, name] : {std::pair{means, "means"}, {quats, "quats"}, {scales, "scales"}, {viewmats, "viewmats"},
                          {Ks, "Ks"}, {v_means2d, "v_means2d"}, {v_cov2d, "v_cov2d"}, {v_depths, "v_depths"}})
    check(t, name);
  const int64_t N = means.size(0), C = viewmats.size(0);
  auto v_means = torch::zeros_like(means), v_quats = torch::zeros_like(quats), v_scales = torch::zeros_like(scales);
  std::vector<Camera> cams;
  for (int64_t c = 0; c < C; ++c)
    cams.push_back(camera_of(viewmats.data_ptr<float>() + c * 16, Ks.data_ptr<float>() + c * 9, width, height));
  const float *m = means.data_ptr<float>(), *q = quats.data_ptr<float>(), *s = scales.data_ptr<float>();
  const float *g_m2 = v_means2d.data_ptr<float>(), *g_c2 = v_cov2d.data_ptr<float>(), *g_d = v_depths.data_ptr<float>();
  float *o_m = v_means.data_ptr<float>(), *o_q = v_quats.data_ptr<float>(), *o_s = v_scales.data_ptr<float>();
  const float near_f = static_cast<float>(near_plane), far_f = static_cast<float>(far_plane);
  for_each_gaussian(N, [&](int64_t n) {
    const Shape shape = shape_of(q + n * 4, s + n * 3);
    float d_cov[3][3] = {};  // d loss / d Sigma (world)
    float d_mean[3] = {};
    for (int64_t c = 0; c < C; ++c) {
      const Camera& cam = cams[c];
      const int64_t cn = c * N + n;
      const InCamera g = in_camera(cam, m + n * 3, shape.cov, near_f, far_f);
      float dp[3] = {0.f, 0.f, g_d[cn]};  // d loss / d camera-space mean (the depth's always flows)
      if (g.in_depth) {
        const float G[2][2] = {{g_c2[cn * 3], 0.5f * g_c2[cn * 3 + 1]}, {0.5f * g_c2[cn * 3 + 1], g_c2[cn * 3 + 2]}};
        float GJ[2][3];  // G J
        for (int i = 0; i < 2; ++i)
          for (int k = 0; k < 3; ++k) GJ[i][k] = G[i][0] * g.J[0][k] + G[i][1] * g.J[1][k];
        float d_cov_c[3][3];  // J^T G J
        for (int j = 0; j < 3; ++j)
          for (int k = 0; k < 3; ++k) d_cov_c[j][k] = g.J[0][j] * GJ[0][k] + g.J[1][j] * GJ[1][k];
        float dJ[2][3];  // 2 G J Sigma_c
        for (int i = 0; i < 2; ++i)
          for (int k = 0; k < 3; ++k)
            dJ[i][k] = 2.f * (GJ[i][0] * g.cov_c[0][k] + GJ[i][1] * g.cov_c[1][k] + GJ[i][2] * g.cov_c[2][k]);
        float tmp[3][3];  // Rc^T dSigma_c Rc, added to dSigma
        for (int i = 0; i < 3; ++i)
          for (int l = 0; l < 3; ++l) tmp[i][l] = d_cov_c[i][0] * cam.R[0][l] + d_cov_c[i][1] * cam.R[1][l] + d_cov_c[i][2] * cam.R[2][l];
        for (int j = 0; j < 3; ++j)
          for (int l = 0; l < 3; ++l) d_cov[j][l] += cam.R[0][j] * tmp[0][l] + cam.R[1][j] * tmp[1][l] + cam.R[2][j] * tmp[2][l];
        const float x = g.p[0], y = g.p[1], z = g.p[2], fx = cam.K[0][0], fy = cam.K[1][1];
        const float vmx = g_m2[cn * 2], vmy = g_m2[cn * 2 + 1];
        // means2d = (K[:2] p) / z
        dp[0] += (vmx * cam.K[0][0] + vmy * cam.K[1][0]) / z;
        dp[1] += (vmx * cam.K[0][1] + vmy * cam.K[1][1]) / z;
        dp[2] -= (vmx * (cam.K[0][0] * x + cam.K[0][1] * y) + vmy * (cam.K[1][0] * x + cam.K[1][1] * y)) / (z * z);
        // J00 = fx / z, J11 = fy / z, J02 = -fx u / z, J12 = -fy v / z with u = clamp(x / z), v = clamp(y / z)
        dp[2] -= (dJ[0][0] * fx + dJ[1][1] * fy) / (z * z);
        const float du_dx = g.u_free ? 1.f / z : 0.f, du_dz = g.u_free ? -x / (z * z) : 0.f;
        const float dv_dy = g.v_free ? 1.f / z : 0.f, dv_dz = g.v_free ? -y / (z * z) : 0.f;
        dp[0] += dJ[0][2] * (-fx / z) * du_dx;
        dp[1] += dJ[1][2] * (-fy / z) * dv_dy;
        dp[2] += dJ[0][2] * (fx * g.u / (z * z) - fx / z * du_dz) + dJ[1][2] * (fy * g.v / (z * z) - fy / z * dv_dz);
      } else {
        dp[0] = dp[1] = 0.f;
      }
      for (int j = 0; j < 3; ++j) d_mean[j] += cam.R[0][j] * dp[0] + cam.R[1][j] * dp[1] + cam.R[2][j] * dp[2];
    }
    for (int j = 0; j < 3; ++j) o_m[n * 3 + j] = d_mean[j];
    // Sigma = M M^T: dM = (dSigma + dSigma^T) M; M = R diag(s)
    float dR[3][3];
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        float dM = 0.f;
        for (int k = 0; k < 3; ++k) dM += (d_cov[i][k] + d_cov[k][i]) * shape.M.m[k][j];
        dR[i][j] = dM * s[n * 3 + j];
        o_s[n * 3 + j] += dM * shape.R.m[i][j];
      }
    const float w = shape.q[0], x = shape.q[1], y = shape.q[2], z = shape.q[3];
    const float qn[4] = {
        2.f * (-z * dR[0][1] + y * dR[0][2] + z * dR[1][0] - x * dR[1][2] - y * dR[2][0] + x * dR[2][1]),
        2.f * (y * dR[0][1] + z * dR[0][2] + y * dR[1][0] - 2.f * x * dR[1][1] - w * dR[1][2] + z * dR[2][0] +
               w * dR[2][1] - 2.f * x * dR[2][2]),
        2.f * (-2.f * y * dR[0][0] + x * dR[0][1] + w * dR[0][2] + x * dR[1][0] + z * dR[1][2] - w * dR[2][0] +
               z * dR[2][1] - 2.f * y * dR[2][2]),
        2.f * (-2.f * z * dR[0][0] - w * dR[0][1] + x * dR[0][2] + w * dR[1][0] - 2.f * z * dR[1][1] + y * dR[1][2] +
               x * dR[2][0] + y * dR[2][1])};
    const float dot = qn[0] * w + qn[1] * x + qn[2] * y + qn[3] * z;  // through q / |q|
    for (int i = 0; i < 4; ++i) o_q[n * 4 + i] = (qn[i] - dot * shape.q[i]) / shape.norm;
  });
  return {v_means, v_quats, v_scales};
}

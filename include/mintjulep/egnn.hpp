#pragma once
// A time-dependent E(n)-equivariant graph network (Satorras et al. 2021), fully connected over
// all N particles with the anchor at the origin. From anchored coordinates y (B, M, n) and a
// time t it gives the three outputs of the Julep kernel (DESIGN.md §4):
//   b    (B, M, n)  equivariant drift, x_out - x_in with the anchor row dropped
//   util (B,)       invariant scalar, sum_i w^T h_i
//   h    (B, M, r)  invariant features; A = h h^T acts on particle indices
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <vector>

namespace mintjulep {

struct EgnnOptions {
  int64_t hidden = 64;
  int64_t layers = 3;
  int64_t rank = 2;               // r, columns of h
  int64_t time_frequencies = 3;   // sin/cos(2 pi f t) for f = 1..F, plus t itself
  double h_init_scale = 0.1;      // h's output layer starts small and random (A = h h^T
                                  // has no gradient at h = 0)
  bool float32 = true;            // network arithmetic in float32 (path weights stay float64)
  double length_scale = 1.0;      // positions are divided by it on the way in (and b multiplied
                                  // on the way out), so the network sees O(1) coordinates
};

struct NetworkOutput {
  torch::Tensor b, util, h;
};

class EgnnLayerImpl : public torch::nn::Module {
 public:
  EgnnLayerImpl(int64_t hidden, bool zero_coordinate_output);
  // x (B, N, n), h (B, N, H) -> updated (x, h).
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& h);

 private:
  torch::nn::Linear edge_left{nullptr}, edge_right{nullptr}, edge_distance{nullptr};
  torch::nn::Sequential edge_rest{nullptr}, coordinate{nullptr}, node{nullptr};
};
TORCH_MODULE(EgnnLayer);

class EgnnImpl : public torch::nn::Module {
 public:
  // types: a type index per particle (N); anchor: the particle pinned at the origin.
  EgnnImpl(EgnnOptions options, std::vector<int64_t> types, int64_t anchor, int64_t dim);
  NetworkOutput forward(const torch::Tensor& y, double t);
  // Several times in one pass: y stacks times.size() equal blocks of configurations along the
  // batch, block k at times[k] (one evaluation per configuration, fewer and larger tensor ops).
  NetworkOutput forward(const torch::Tensor& y, const std::vector<double>& times);
  const EgnnOptions& options() const { return options_; }

 private:
  EgnnOptions options_;
  int64_t anchor_, dim_, num_particles_;
  torch::Tensor types_, anchor_flag_;
  torch::nn::Embedding embedding{nullptr};
  torch::nn::Linear input{nullptr}, util_out{nullptr}, h_out{nullptr};
  std::vector<EgnnLayer> layers_;
};
TORCH_MODULE(Egnn);

}  // namespace mintjulep

#include <mintjulep/egnn.hpp>
#include <mintjulep/error.hpp>

#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>

#include <cmath>

namespace mintjulep {

EgnnLayerImpl::EgnnLayerImpl(int64_t hidden, bool zero_coordinate_output) {
  using namespace torch::nn;
  // The first edge layer acts on [h_i, h_j, |x_i - x_j|^2]; split into per-node products so
  // that the N^2 edges only pay for an addition: W [h_i; h_j; d] = W_l h_i + W_r h_j + w d.
  edge_left = register_module("edge_left", Linear(hidden, hidden));
  edge_right = register_module("edge_right", Linear(LinearOptions(hidden, hidden).bias(false)));
  edge_distance = register_module("edge_distance", Linear(LinearOptions(1, hidden).bias(false)));
  edge_rest = register_module("edge_rest", Sequential(Tanh(), Linear(hidden, hidden), Tanh()));
  coordinate = register_module("coordinate", Sequential(Linear(hidden, hidden), Tanh(),
                                                        Linear(LinearOptions(hidden, 1).bias(false))));
  node = register_module("node", Sequential(Linear(2 * hidden, hidden), Tanh(), Linear(hidden, hidden)));
  if (zero_coordinate_output) {
    torch::NoGradGuard no_grad;
    coordinate[2]->as<Linear>()->weight.zero_();
  }
}

std::pair<torch::Tensor, torch::Tensor> EgnnLayerImpl::forward(const torch::Tensor& x,
                                                               const torch::Tensor& h) {
  // Every (B, N, N, H) edge tensor costs a pass over memory, forward and backward, so the
  // edge part is kept to what the architecture needs: the per-node products of the split
  // first layer broadcast into one sum, |x_i - x_j|^2 w added in the same pass (addcmul; a
  // Linear(1, H) on the edges is a K = 1 matrix product), and no (B, N, N, 1) self-edge mask:
  // the self-edge carries x_i - x_i = 0 into the coordinate update, and its message is
  // subtracted from the message sum (an (B, N, H) diagonal) instead of masked out.
  // The edge MLPs see the edges as one (B N N, H) matrix: a Linear on a 2-D input is a single
  // addmm with the bias fused, where a 4-D input costs a matmul plus a separate bias pass.
  const int64_t batch = x.size(0), n_particles = x.size(1), hidden = h.size(-1);
  auto diff = x.unsqueeze(2) - x.unsqueeze(1);      // (B, N, N, n): x_i - x_j
  auto d2 = diff.pow(2).sum(-1, /*keepdim=*/true);   // (B, N, N, 1)
  auto pre = torch::addcmul(edge_left(h).unsqueeze(2) + edge_right(h).unsqueeze(1), d2,
                            edge_distance->weight.view({-1}));
  auto m_flat = edge_rest->forward(pre.view({-1, hidden}));  // (B N N, H), self-edges included
  auto c = coordinate->forward(m_flat).view({batch, n_particles, n_particles, 1});
  auto m = m_flat.view({batch, n_particles, n_particles, hidden});
  // Mean over the N-1 neighbours keeps the coordinate update O(1) in N.
  auto x_new = x + (diff * c).sum(2) / static_cast<double>(n_particles - 1);
  auto m_sum = m.sum(2) - m.diagonal(0, 1, 2).transpose(1, 2);  // sum over j != i
  auto h_new = h + node->forward(torch::cat({h, m_sum}, -1));
  return {x_new, h_new};
}

EgnnImpl::EgnnImpl(EgnnOptions options, std::vector<int64_t> types, int64_t anchor, int64_t dim)
    : options_(options), anchor_(anchor), dim_(dim),
      num_particles_(static_cast<int64_t>(types.size())) {
  using namespace torch::nn;
  check(options_.hidden >= 1 && options_.layers >= 1 && options_.rank >= 1,
        "network hidden, layers and rank must be >= 1");
  check(options_.length_scale > 0, "network length_scale must be positive");
  check(anchor_ >= 0 && anchor_ < num_particles_, "network anchor out of range");
  int64_t num_types = 1;
  for (int64_t t : types) num_types = std::max(num_types, t + 1);
  types_ = register_buffer("types", torch::tensor(types, torch::kLong));
  auto flag = torch::zeros({num_particles_, 1});
  flag[anchor_][0] = 1.0;
  anchor_flag_ = register_buffer("anchor_flag", flag);
  const int64_t embedding_dim = std::min<int64_t>(options_.hidden, 8);
  embedding = register_module("embedding", Embedding(num_types, embedding_dim));
  const int64_t in_features = embedding_dim + 1 /*|y_i|*/ + 1 /*anchor*/ + 1 + 2 * options_.time_frequencies;
  input = register_module("input", Linear(in_features, options_.hidden));
  for (int64_t l = 0; l < options_.layers; ++l)
    layers_.push_back(register_module("layer" + std::to_string(l),
                                      EgnnLayer(options_.hidden, /*zero_coordinate_output=*/true)));
  util_out = register_module("util_out", Linear(LinearOptions(options_.hidden, 1).bias(false)));
  h_out = register_module("h_out", Linear(LinearOptions(options_.hidden, options_.rank).bias(false)));
  torch::NoGradGuard no_grad;
  util_out->weight.zero_();  // training starts from the plain annealing path (b = Util = 0)
  h_out->weight.normal_(0.0, options_.h_init_scale / std::sqrt(static_cast<double>(options_.hidden)));
}

NetworkOutput EgnnImpl::forward(const torch::Tensor& y, double t) {
  return forward(y, std::vector<double>{t});
}

NetworkOutput EgnnImpl::forward(const torch::Tensor& y, const std::vector<double>& times) {
  const int64_t batch = y.size(0), M = num_particles_ - 1;
  const auto blocks = static_cast<int64_t>(times.size());
  check(blocks >= 1 && batch % blocks == 0, "network: the batch must hold equal blocks, one per time");
  auto options = y.options();
  auto origin = torch::zeros({batch, 1, dim_}, options);
  auto x = torch::cat({y.narrow(1, 0, anchor_), origin, y.narrow(1, anchor_, M - anchor_)}, 1) /
           options_.length_scale;

  std::vector<double> encoding;
  for (double t : times) {
    encoding.push_back(t);
    for (int64_t f = 1; f <= options_.time_frequencies; ++f) {
      encoding.push_back(std::sin(2 * M_PI * f * t));
      encoding.push_back(std::cos(2 * M_PI * f * t));
    }
  }
  auto time = torch::tensor(encoding, options).view({blocks, 1, 1, -1});
  time = time.expand({blocks, batch / blocks, num_particles_, time.size(-1)})
             .reshape({batch, num_particles_, time.size(-1)});
  auto radius = x.pow(2).sum(-1, true).add(1e-12).sqrt();
  auto type_features = embedding(types_.to(torch::kLong))  // Module::to(dtype) casts every buffer
                           .to(options).unsqueeze(0).expand({batch, -1, -1});
  auto flag = anchor_flag_.to(options).unsqueeze(0).expand({batch, -1, -1});
  auto h = input(torch::cat({type_features, radius, flag, time}, -1));
  auto x_out = x;
  for (auto& layer : layers_) std::tie(x_out, h) = layer->forward(x_out, h);

  auto drop_anchor = [&](const torch::Tensor& v) {
    return torch::cat({v.narrow(1, 0, anchor_), v.narrow(1, anchor_ + 1, M - anchor_)}, 1);
  };
  NetworkOutput out;
  out.b = drop_anchor(x_out - x) * options_.length_scale;
  out.util = util_out(h).sum({1, 2});
  out.h = drop_anchor(h_out(h));
  return out;
}

}  // namespace mintjulep

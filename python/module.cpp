// The `mintjulep` Python module: energies and forces of the built-in systems on numpy arrays,
// train and sample from a run configuration, and sampling of an energy defined in Python.
//
// Arrays cross the boundary as float64 numpy arrays: they are copied into LibTorch tensors on
// the way in and out of them on the way back, so the module needs neither torch nor any other
// Python package besides numpy. Every mintjulep::Error becomes a `mintjulep.Error`.
#include <mintjulep/config.hpp>
#include <mintjulep/energy.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/model.hpp>
#include <mintjulep/systems.hpp>
#include <mintjulep/threads.hpp>

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <torch/csrc/autograd/custom_function.h>
#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace py = pybind11;
using namespace pybind11::literals;

namespace mintjulep::python {
namespace {

using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// A float64 tensor holding a copy of the array.
torch::Tensor to_tensor(const Array& a) {
  std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
  return torch::from_blob(const_cast<double*>(a.data()), shape, torch::kFloat64).clone();
}

// A numpy array holding a copy of the tensor (as float64, on the CPU).
Array to_numpy(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  std::vector<py::ssize_t> shape(c.sizes().begin(), c.sizes().end());
  Array a(shape);
  if (c.numel() > 0) std::memcpy(a.mutable_data(), c.data_ptr<double>(), sizeof(double) * c.numel());
  return a;
}

// Positions from Python: (N, n) or (B, N, n), anything numpy turns into float64 numbers.
// Returns (B, N, n) and whether a single configuration was given.
std::pair<torch::Tensor, bool> positions_from(const py::object& obj, const Energy& system) {
  Array a;
  try {
    a = Array::ensure(obj);
  } catch (const py::error_already_set&) {
  }
  check(static_cast<bool>(a), "positions must be an array of numbers");
  auto x = to_tensor(a);
  check(x.dim() == 2 || x.dim() == 3,
        fmt::format("positions have shape {}, but system '{}' needs (B, {}, {}) or ({}, {})",
                    shape_text(std::vector<int64_t>(x.sizes().begin(), x.sizes().end())), system.name(),
                    system.num_particles(), system.dim(), system.num_particles(), system.dim()));
  const bool single = x.dim() == 2;
  if (single) x = x.unsqueeze(0);
  system.check_positions(x);
  return {x, single};
}

// ---------------------------------------------------------------------------------------------
// An energy defined in Python: fn maps (B, N, n) float64 positions to (B,) energies in kT.
// Gradients come from the Python callable `grad` ((B, N, n) -> (B, N, n)) when one is given,
// else from central finite differences of fn. Second derivatives (the Hessians of the harmonic
// prior initialisation) are finite differences of the gradient. The path V(x, t) is U(x) for
// every t: no soft core.
class CallbackEnergy;

torch::Tensor callback_gradient(const CallbackEnergy& e, const torch::Tensor& x);

// The gradient G(x) as a differentiable function: its backward is a Hessian-vector product by
// central differences of the gradient along v.
struct GradientFn : public torch::autograd::Function<GradientFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               int64_t self) {
    ctx->save_for_backward({x});
    ctx->saved_data["self"] = self;
    return callback_gradient(*reinterpret_cast<const CallbackEnergy*>(self), x.detach());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs);
};

// U(x) with gradient G(x).
struct EnergyFn : public torch::autograd::Function<EnergyFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               int64_t self);
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto x = ctx->get_saved_variables()[0];
    const int64_t self = ctx->saved_data["self"].toInt();
    auto g = GradientFn::apply(x, self);
    return {grad_outputs[0].view({-1, 1, 1}) * g, torch::Tensor()};
  }
};

class CallbackEnergy : public Energy {
 public:
  CallbackEnergy(py::function fn, int64_t num_particles, int64_t dim, double length_scale,
                 py::object grad, std::string name, double fd_step)
      : fn_(std::move(fn)), grad_(std::move(grad)), num_particles_(num_particles), dim_(dim),
        length_scale_(length_scale), name_(std::move(name)), fd_step_(fd_step) {
    check(num_particles_ >= 2, fmt::format("PythonEnergy needs num_particles >= 2, got {}", num_particles_));
    check(dim_ >= 1, fmt::format("PythonEnergy needs dim >= 1, got {}", dim_));
    check(length_scale_ > 0, fmt::format("PythonEnergy needs length_scale > 0, got {}", length_scale_));
    check(fd_step_ > 0, fmt::format("PythonEnergy needs fd_step > 0, got {}", fd_step_));
  }
  ~CallbackEnergy() override {
    py::gil_scoped_acquire gil;
    fn_ = py::object();
    grad_ = py::object();
  }

  std::string name() const override { return name_; }
  int64_t num_particles() const override { return num_particles_; }
  int64_t dim() const override { return dim_; }
  double length_scale() const override { return length_scale_; }
  bool has_grad() const { return !grad_.is_none(); }

  torch::Tensor energy(const torch::Tensor& x, double /*t*/) const override {
    check_positions(x);
    return EnergyFn::apply(x, reinterpret_cast<int64_t>(this));
  }

  // fn on (B, N, n) float64 CPU positions -> (B,) float64.
  torch::Tensor call_fn(const torch::Tensor& x) const {
    py::gil_scoped_acquire gil;
    auto result = fn_(to_numpy(x));
    return checked(result, {x.size(0)}, "energy function");
  }
  // grad on (B, N, n) -> (B, N, n) float64.
  torch::Tensor call_grad(const torch::Tensor& x) const {
    py::gil_scoped_acquire gil;
    auto result = grad_(to_numpy(x));
    return checked(result, {x.size(0), num_particles_, dim_}, "gradient function");
  }
  double fd_step() const { return fd_step_ * length_scale_; }

 private:
  torch::Tensor checked(const py::object& result, const std::vector<int64_t>& shape,
                        const std::string& what) const {
    Array a;
    try {
      a = Array::ensure(result);
    } catch (const py::error_already_set&) {
    }
    check(static_cast<bool>(a), fmt::format("the {} of PythonEnergy '{}' must return an array of numbers",
                                            what, name_));
    auto t = to_tensor(a);
    check(std::vector<int64_t>(t.sizes().begin(), t.sizes().end()) == shape,
          fmt::format("the {} of PythonEnergy '{}' returned shape {}, expected {}", what, name_,
                      shape_text(std::vector<int64_t>(t.sizes().begin(), t.sizes().end())),
                      shape_text(shape)));
    return t;
  }

  py::object fn_, grad_;
  int64_t num_particles_, dim_;
  double length_scale_;
  std::string name_;
  double fd_step_;
};

torch::Tensor EnergyFn::forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                                int64_t self) {
  ctx->save_for_backward({x});
  ctx->saved_data["self"] = self;
  const auto& e = *reinterpret_cast<const CallbackEnergy*>(self);
  return e.call_fn(x.detach().to(torch::kCPU, torch::kFloat64)).to(x.options());
}

torch::Tensor callback_gradient(const CallbackEnergy& e, const torch::Tensor& x_in) {
  auto x = x_in.to(torch::kCPU, torch::kFloat64);
  torch::Tensor g;
  if (e.has_grad()) {
    g = e.call_grad(x);
  } else {
    // Central differences: one call of fn on all 2 N n displaced copies of the batch.
    const int64_t B = x.size(0), N = x.size(1), n = x.size(2), D = N * n;
    const double h = e.fd_step();
    auto shifts = torch::eye(D, torch::kFloat64).view({D, 1, N, n}) * h;  // (D, 1, N, n)
    auto xs = torch::cat({x.unsqueeze(0) + shifts, x.unsqueeze(0) - shifts});  // (2D, B, N, n)
    auto u = e.call_fn(xs.reshape({2 * D * B, N, n})).view({2, D, B});
    g = ((u[0] - u[1]) / (2 * h)).t().reshape({B, N, n});
  }
  return g.to(x_in.options());
}

torch::autograd::variable_list GradientFn::backward(torch::autograd::AutogradContext* ctx,
                                                    torch::autograd::variable_list grad_outputs) {
  // H v by central differences of the gradient along the unit vector v / |v| (per sample).
  auto x = ctx->get_saved_variables()[0].detach().to(torch::kCPU, torch::kFloat64);
  const auto& e = *reinterpret_cast<const CallbackEnergy*>(ctx->saved_data["self"].toInt());
  auto v = grad_outputs[0].detach().to(torch::kCPU, torch::kFloat64);
  auto norm = v.flatten(1).norm(2, 1).view({-1, 1, 1});
  auto unit = v / norm.clamp_min(1e-300);
  const double h = 1e3 * e.fd_step();  // gradients: a larger step than for energies
  auto both = callback_gradient(e, torch::cat({x + h * unit, x - h * unit}));
  const int64_t B = x.size(0);
  auto hv = (both.narrow(0, 0, B) - both.narrow(0, B, B)) / (2 * h) * norm;
  return {hv.to(grad_outputs[0].options()), torch::Tensor()};
}

// ---------------------------------------------------------------------------------------------
// What Python sees of an energy: a built-in System or a PythonEnergy.
struct EnergyHandle {
  std::shared_ptr<Energy> energy;

  std::pair<torch::Tensor, torch::Tensor> evaluate(const py::object& positions, double t, bool forces) const {
    check(t >= 0.0 && t <= 1.0, fmt::format("t = {} is outside [0, 1]", t));
    auto [x, single] = positions_from(positions, *energy);
    AnchoredEnergy anchored(energy, energy->default_anchor());
    torch::Tensor value, f;
    {
      py::gil_scoped_release release;
      auto y = anchored.to_anchored(x);
      if (forces) {
        auto vg = anchored.value_and_grad(y, t);
        value = vg.value;
        f = anchored.full_forces(vg.grad);
      } else {
        torch::NoGradGuard no_grad;
        value = anchored.value(y, t);
      }
    }
    if (single) {
      value = value.squeeze(0);
      if (f.defined()) f = f.squeeze(0);
    }
    return {value, f};
  }
};

py::object energy_result(const torch::Tensor& value) {
  if (value.dim() == 0) return py::float_(value.item<double>());
  return to_numpy(value);
}

struct SystemHandle : EnergyHandle {};
struct PythonEnergyHandle : EnergyHandle {};

// ---------------------------------------------------------------------------------------------
// Samples as Python sees them.
struct PySamples {
  Array positions, log_w, energies;
  double ess = 0, log_z = 0, seconds = 0;
  int64_t num_non_finite = 0;
  bool smc = false;
};

PySamples to_python(const Samples& s) {
  PySamples p;
  p.positions = to_numpy(s.positions);
  p.log_w = to_numpy(s.log_w);
  p.energies = to_numpy(s.energies);
  p.ess = s.ess;
  p.log_z = s.log_z;
  p.seconds = s.seconds;
  p.num_non_finite = s.num_non_finite;
  p.smc = s.smc;
  return p;
}

torch::Device device_from(std::string name) {
  if (name.empty()) name = "cpu";
  check(name == "cpu" || name.rfind("cuda", 0) == 0,
        fmt::format("device must be 'cpu' or 'cuda' (or 'cuda:K'), got '{}'", name));
  if (name != "cpu")
    check(torch::cuda::is_available(),
          fmt::format("device '{}' requested but no CUDA device is available to this build; use 'cpu'", name));
  return torch::Device(name);
}

void apply_threads(int threads, const RunConfig& config) {
  check(threads >= 0, "threads must be >= 0 (0 means one per core)");
  set_threads(threads > 0 ? threads : config.threads);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), fmt::format("cannot read '{}'", path));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void check_method(const std::string& method) {
  check(method.empty() || method == "prior" ||
            std::find(anneal_methods().begin(), anneal_methods().end(), method) != anneal_methods().end(),
        fmt::format("method must be prior or an annealing method, got '{}'", method));
}

SamplingOptions sampling_options(const std::string& method, int64_t num_samples, uint64_t seed,
                                 std::optional<int64_t> chunk, int64_t steps, int64_t moves) {
  SamplingOptions s;
  s.method = method;
  s.count = num_samples;
  s.seed = seed;
  if (chunk) {
    s.chunk = *chunk;
    s.chunk_given = true;
  }
  s.steps = steps;
  s.moves = moves;
  return s;
}

py::object train(const std::string& config_path, const std::string& out, std::optional<uint64_t> seed,
                 int threads, const std::string& stage, const std::string& from, bool resume,
                 const std::string& device, bool quiet) {
  namespace fs = std::filesystem;
  TrainRunOptions options;
  options.stage = stage;
  options.from = from;
  options.resume = resume;
  check_train_options(options);
  check(fs::is_regular_file(config_path), fmt::format("config file '{}' does not exist", config_path));
  RunConfig config = load_config(config_path);
  if (seed) config.seed = *seed;
  apply_threads(threads, config);
  std::string metrics;
  {
    py::gil_scoped_release release;
    std::error_code ec;
    fs::create_directories(out, ec);
    check(!ec && fs::is_directory(out), fmt::format("cannot create output folder '{}': {}; choose a folder you can write to", out, ec.message()));
    const auto config_copy = (fs::path(out) / "config.toml").string();
    check(!resume || !fs::exists(config_copy) || read_text(config_copy) == read_text(config_path),
          fmt::format("resume: '{}' differs from the config this run started with ('{}'); resume with that one",
                      config_path, config_copy));
    Model model = build_model(config, device_from(device.empty() ? config.device : device),
                              /*prior_from_checkpoint=*/stage == "julep", quiet ? silent_log() : print_log());
    options.config_text = read_text(config_path);
    metrics = mintjulep::train(model, out, options);
  }
  return py::module_::import("json").attr("loads")(metrics);
}

PySamples sample_run(const std::string& run, std::optional<std::string> method_given, int64_t num_samples,
                     uint64_t seed, std::optional<int64_t> chunk, int64_t steps, int64_t moves, int threads,
                     const std::string& device, bool quiet) {
  namespace fs = std::filesystem;
  check(fs::is_directory(run), fmt::format("run folder '{}' not found", run));
  RunConfig config = load_config((fs::path(run) / "config.toml").string());
  apply_threads(threads, config);
  std::string method = method_given.value_or("");
  if (method.empty() && config.anneal_configured) method = config.anneal.method;
  check_method(method);
  const bool needs_kernel = method.empty() || method == "julep" || method == "smc-julep";
  Samples s;
  {
    py::gil_scoped_release release;
    Model model = load_run(run, nullptr, config, device_from(device.empty() ? config.device : device),
                           needs_kernel, quiet ? silent_log() : print_log());
    s = sample(model, sampling_options(method, num_samples, seed, chunk, steps, moves));
  }
  return to_python(s);
}

// The run configuration of sample_energy when no config file is given: a Gaussian prior on the
// harmonic basins of the minima and MALA annealing (T = 50), as in examples/cpp/lj_trimer.cpp.
RunConfig default_energy_config() {
  RunConfig config;
  config.prior.family = "gaussian";
  config.prior.init = "harmonic";
  config.prior.components = 8;
  config.anneal.method = "mala";
  config.anneal.steps = 50;
  config.anneal.pilot = 200;
  config.anneal_configured = true;
  return config;
}

PySamples sample_energy(const EnergyHandle& energy, std::optional<std::string> config_path,
                        const std::string& method, int64_t num_samples, uint64_t seed,
                        std::optional<int64_t> chunk, int64_t steps, int64_t moves, int threads, bool quiet) {
  check(method == "prior" || method == "mala" || method == "smc-mala",
        fmt::format("sample_energy: method must be prior, mala or smc-mala (no kernel is trained), got '{}'",
                    method));
  RunConfig config = config_path ? load_config(*config_path) : default_energy_config();
  config.seed = seed;
  apply_threads(threads, config);
  Samples s;
  {
    py::gil_scoped_release release;
    Model model = build_model(energy.energy, config, torch::kCPU, false, quiet ? silent_log() : print_log());
    s = sample(model, sampling_options(method, num_samples, seed, chunk, steps, moves));
  }
  return to_python(s);
}

}  // namespace
}  // namespace mintjulep::python

PYBIND11_MODULE(mintjulep, m) {
  using namespace mintjulep;
  using namespace mintjulep::python;
  m.doc() =
      "MintJulep: Boltzmann sampling of N-body systems from the energy alone.\n\n"
      "Energies and forces of the built-in systems (System), training and sampling from a run\n"
      "configuration (train, sample), and sampling of an energy defined in Python (PythonEnergy,\n"
      "sample_energy). Arrays are float64 numpy arrays; energies are in kT.";

  static py::exception<Error> error(m, "Error", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      error(e.what());
    } catch (const c10::Error& e) {
      std::string text = e.what_without_backtrace();
      PyErr_SetString(PyExc_RuntimeError, text.substr(0, text.find('\n')).c_str());
    }
  });

  py::class_<EnergyHandle>(m, "Energy", "An energy U(x) in kT of N particles in n dimensions.")
      .def_property_readonly("name", [](const EnergyHandle& h) { return h.energy->name(); })
      .def_property_readonly("num_particles", [](const EnergyHandle& h) { return h.energy->num_particles(); })
      .def_property_readonly("dim", [](const EnergyHandle& h) { return h.energy->dim(); })
      .def_property_readonly("length_scale", [](const EnergyHandle& h) { return h.energy->length_scale(); })
      .def(
          "energy",
          [](const EnergyHandle& h, const py::object& x, double t) {
            return energy_result(h.evaluate(x, t, false).first);
          },
          "x"_a, "t"_a = 1.0,
          "Energies in kT of positions x, shape (B, N, n) -> (B,) array or (N, n) -> float. t < 1: the "
          "softened annealing path V(x, t).")
      .def(
          "forces",
          [](const EnergyHandle& h, const py::object& x, double t) {
            return to_numpy(h.evaluate(x, t, true).second);
          },
          "x"_a, "t"_a = 1.0, "Forces -dU/dx in kT per length unit, the shape of x.")
      .def(
          "energy_and_forces",
          [](const EnergyHandle& h, const py::object& x, double t) {
            auto [value, f] = h.evaluate(x, t, true);
            return py::make_tuple(energy_result(value), to_numpy(f));
          },
          "x"_a, "t"_a = 1.0, "(energy(x), forces(x)) from one evaluation.")
      .def("__repr__", [](const EnergyHandle& h) {
        return fmt::format("<mintjulep energy '{}': {} particles in {}D>", h.energy->name(),
                           h.energy->num_particles(), h.energy->dim());
      });

  py::class_<SystemHandle, EnergyHandle>(m, "System", "A built-in system by name (dw4, lj13, lj55, ala2, ...).")
      .def(py::init([](const std::string& name, double temperature) {
             SystemHandle h;
             h.energy = make_system(name, SystemOptions{temperature});
             return h;
           }),
           "name"_a, "temperature"_a = 0.0,
           "name: a system name of known_systems(); temperature: kelvin, molecules only (0: 300 K).");

  py::class_<PythonEnergyHandle, EnergyHandle>(
      m, "PythonEnergy",
      "An energy defined in Python (slow path: one Python call per batch of positions).\n\n"
      "fn(x) maps float64 positions (B, N, n) to energies (B,) in kT; it must be invariant under\n"
      "translations, rotations and reflections (MintJulep anchors one particle at the origin and\n"
      "samples in the frame of two particles). grad(x), if given, returns dU/dx (B, N, n);\n"
      "without it gradients are central finite differences of fn with step fd_step *\n"
      "length_scale (2 N n extra energies per configuration). Second derivatives (the Hessians\n"
      "of the harmonic prior initialisation) are finite differences of the gradient.\n"
      "The annealing path of this energy is U(x) for every t (no soft core).")
      .def(py::init([](py::function fn, int64_t num_particles, int64_t dim, double length_scale,
                       py::object grad, std::string name, double fd_step) {
             PythonEnergyHandle h;
             h.energy = std::make_shared<CallbackEnergy>(std::move(fn), num_particles, dim, length_scale,
                                                         std::move(grad), std::move(name), fd_step);
             return h;
           }),
           "fn"_a, "num_particles"_a, "dim"_a, "length_scale"_a = 1.0, "grad"_a = py::none(),
           "name"_a = "python", "fd_step"_a = 1e-5);

  py::class_<PySamples>(m, "Samples", "Importance-weighted samples.")
      .def_readonly("positions", &PySamples::positions, "(M, N, n) float64, the anchor at the origin")
      .def_readonly("log_w", &PySamples::log_w, "(M,) float64 log importance weights")
      .def_readonly("energies", &PySamples::energies, "(M,) float64 U(x) in kT")
      .def_readonly("ess", &PySamples::ess, "normalised ESS (path ESS; SMC: the final ESS)")
      .def_readonly("log_z", &PySamples::log_z, "log mean w, the estimate of log Z")
      .def_readonly("num_non_finite", &PySamples::num_non_finite)
      .def_readonly("smc", &PySamples::smc, "whether the method resamples")
      .def_readonly("seconds", &PySamples::seconds)
      .def("__getitem__",
           [](const PySamples& s, const std::string& key) -> py::object {
             if (key == "positions") return s.positions;
             if (key == "log_w") return s.log_w;
             if (key == "energies") return s.energies;
             if (key == "ess") return py::float_(s.ess);
             if (key == "log_z") return py::float_(s.log_z);
             throw py::key_error(key);
           })
      .def("__repr__", [](const PySamples& s) {
        return fmt::format("<mintjulep Samples: {} samples, ESS {:.4f}, log Z {:.4f}>", s.log_w.shape(0), s.ess,
                           s.log_z);
      });

  m.def("known_systems", &known_systems, "One line per known system name pattern.");
  m.def("set_threads", &set_threads, "threads"_a,
        "CPU threads for tensor operations (0: one per core); returns the count in use.");
  m.def("train", &mintjulep::python::train, "config"_a, "out"_a, "seed"_a = py::none(), "threads"_a = 0,
        "stage"_a = "all", "from_run"_a = "", "resume"_a = false, "device"_a = "", "quiet"_a = false,
        "As `mintjulep train CONFIG --out OUT`: writes the run folder and returns its metrics (a dict).");
  m.def("sample", &sample_run, "run"_a, "method"_a = py::none(), "num_samples"_a = 10000, "seed"_a = 0,
        "chunk"_a = py::none(), "steps"_a = 0, "moves"_a = 0, "threads"_a = 0, "device"_a = "",
        "quiet"_a = false,
        "As `mintjulep sample RUN`: weighted samples from a trained run folder. method: None (the run's\n"
        "own sampler), 'prior', or an annealing method (mala, smc-mala, julep, ula, ...).");
  m.def("sample_energy", &sample_energy, "energy"_a, "config"_a = py::none(), "method"_a = "mala",
        "num_samples"_a = 1000, "seed"_a = 0, "chunk"_a = py::none(), "steps"_a = 0, "moves"_a = 0,
        "threads"_a = 0, "quiet"_a = false,
        "Weighted samples of any energy (a System or a PythonEnergy) without training: a prior built\n"
        "from the config (default: Gaussian components on the harmonic basins of the minima) and\n"
        "method 'mala' or 'smc-mala' annealing (or 'prior' draws alone). config: a TOML file path.");
}

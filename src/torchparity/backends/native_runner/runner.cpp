// torchparity native runner: executes a deployed artifact (a TorchScript file
// or an AOTInductor package) from C++, the way a C++ service would, and
// reports its outputs and timing samples back to the harness.
//
// Protocol and tensor file format: docs/native-runner.md. In short:
//   torchparity-runner --kind torchscript|aoti --artifact PATH --workdir DIR
//                      [--device cpu|cuda:N] [--threads N] [--interop-threads N]
//                      [--parent-pid PID]
// prints "@@torchparity ready {json}" once the artifact is loaded, then
// answers one line per command read from stdin:
//   run                  DIR/inputs.bin -> one call -> DIR/outputs.bin
//   time T R MR MT W MW  DIR/inputs.bin -> warm-up + blocked repeats (harness/engine/timing.py)
//   count W M S          DIR/inputs.bin -> W warm-up calls, M calls counted by callgrind (under valgrind)
//   quit                 (or end of input)
// with "@@torchparity ok {json}" or "@@torchparity error <one line>".
//   torchparity-runner --roundtrip IN OUT   reads a tensor file, writes it back (format tests)

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/headeronly/version.h>
#include <torch/script.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// Instruction counts (the count command) use callgrind's client requests when
// the build found valgrind's header (CMakeLists.txt); without it the runner
// builds as before and answers count with an error.
#ifdef TP_CALLGRIND
#include <valgrind/callgrind.h>
#endif

#ifdef _WIN32
#define NOMINMAX  // windows.h's min/max macros would break std::min/std::max
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <unistd.h>
#endif

#ifndef TP_COMPILER
#define TP_COMPILER "unknown"
#endif
#define TP_STR2(x) #x
#define TP_STR(x) TP_STR2(x)

namespace {

const char kMagic[8] = {'T', 'P', 'T', 'E', 'N', 'S', 'O', 'R'};
const uint32_t kVersion = 1;
const char* kPrefix = "@@torchparity";
#ifdef TP_CALLGRIND
const bool kCallgrind = true;  // built with callgrind's client requests (the count command)
#else
const bool kCallgrind = false;
#endif

// ---------------------------------------------------------------- tensor files
// Codes are part of the file format: never renumber (docs/native-runner.md).
const std::vector<std::pair<uint8_t, at::ScalarType>>& dtype_codes() {
  static const std::vector<std::pair<uint8_t, at::ScalarType>> codes = {
      {1, at::kDouble}, {2, at::kFloat},        {3, at::kHalf},        {4, at::kBFloat16},
      {5, at::kLong},   {6, at::kInt},          {7, at::kShort},       {8, at::kChar},
      {9, at::kByte},   {10, at::kBool},        {11, at::kComplexFloat}, {12, at::kComplexDouble},
  };
  return codes;
}

at::ScalarType dtype_of(uint8_t code) {
  for (const auto& [c, t] : dtype_codes())
    if (c == code) return t;
  throw std::runtime_error("tensor file: unknown dtype code " + std::to_string(code));
}

uint8_t code_of(at::ScalarType type) {
  for (const auto& [c, t] : dtype_codes())
    if (t == type) return c;
  throw std::runtime_error(std::string("tensor file: no code for dtype ") + c10::toString(type));
}

bool little_endian() {
  const uint16_t probe = 1;
  return *reinterpret_cast<const uint8_t*>(&probe) == 1;
}

struct Reader {
  std::vector<char> bytes;
  size_t at = 0;
  void need(size_t n) {
    if (bytes.size() - at < n) throw std::runtime_error("tensor file: truncated");
  }
  template <typename T>
  T get() {
    need(sizeof(T));
    T value;
    std::memcpy(&value, bytes.data() + at, sizeof(T));
    at += sizeof(T);
    return value;
  }
};

struct Named {
  std::string name;
  at::Tensor tensor;
};

std::vector<Named> read_tensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  Reader r;
  r.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  r.need(8);
  if (std::memcmp(r.bytes.data(), kMagic, 8) != 0)
    throw std::runtime_error(path + ": not a torchparity tensor file");
  r.at = 8;
  if (r.get<uint32_t>() != kVersion) throw std::runtime_error(path + ": unsupported version");
  const uint32_t count = r.get<uint32_t>();
  std::vector<Named> out;
  for (uint32_t i = 0; i < count; ++i) {
    Named item;
    const uint32_t name_len = r.get<uint32_t>();
    r.need(name_len);
    item.name.assign(r.bytes.data() + r.at, name_len);
    r.at += name_len;
    const auto dtype = dtype_of(r.get<uint8_t>());
    const uint8_t ndim = r.get<uint8_t>();
    r.get<uint16_t>();  // reserved
    std::vector<int64_t> shape(ndim);
    for (auto& d : shape) d = r.get<int64_t>();
    const uint64_t nbytes = r.get<uint64_t>();
    item.tensor = torch::empty(shape, torch::TensorOptions().dtype(dtype));
    if (nbytes != item.tensor.nbytes())
      throw std::runtime_error(path + ": byte count does not match shape and dtype");
    r.need(nbytes);
    if (nbytes) std::memcpy(item.tensor.data_ptr(), r.bytes.data() + r.at, nbytes);
    r.at += nbytes;
    out.push_back(std::move(item));
  }
  if (r.at != r.bytes.size())  // as tensor_io.decode: a longer file is not this one
    throw std::runtime_error(path + ": bytes after the last entry");
  return out;
}

template <typename T>
void put(std::ofstream& out, T value) {
  out.write(reinterpret_cast<const char*>(&value), sizeof(T));
}

void write_tensors(const std::string& path, const std::vector<Named>& items) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + path);
  out.write(kMagic, 8);
  put<uint32_t>(out, kVersion);
  put<uint32_t>(out, static_cast<uint32_t>(items.size()));
  for (const auto& item : items) {
    const at::Tensor t = item.tensor.detach().to(at::kCPU).contiguous();
    if (t.dim() > 255) throw std::runtime_error("tensor file: more than 255 dimensions");
    put<uint32_t>(out, static_cast<uint32_t>(item.name.size()));
    out.write(item.name.data(), static_cast<std::streamsize>(item.name.size()));
    put<uint8_t>(out, code_of(t.scalar_type()));
    put<uint8_t>(out, static_cast<uint8_t>(t.dim()));
    put<uint16_t>(out, 0);
    for (int64_t d : t.sizes()) put<int64_t>(out, d);
    put<uint64_t>(out, static_cast<uint64_t>(t.nbytes()));
    if (t.nbytes())
      out.write(static_cast<const char*>(t.const_data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  }
  if (!out.flush()) throw std::runtime_error("cannot write " + path);
}

// ------------------------------------------------------------------- outputs
// Leaves in the order torch's pytree flattens the same value in Python:
// tuple and list elements in order, dict values in insertion order, None has
// none; Python scalars become 0-d tensors.
void flatten(const c10::IValue& value, const std::string& path, std::vector<Named>& out) {
  if (value.isTensor()) {
    out.push_back({path, value.toTensor()});
  } else if (value.isTuple()) {
    const auto& elems = value.toTupleRef().elements();
    for (size_t i = 0; i < elems.size(); ++i) flatten(elems[i], path + "[" + std::to_string(i) + "]", out);
  } else if (value.isList()) {
    const auto list = value.toList();
    for (size_t i = 0; i < list.size(); ++i) flatten(list.get(i), path + "[" + std::to_string(i) + "]", out);
  } else if (value.isGenericDict()) {
    for (const auto& entry : value.toGenericDict()) {
      const auto& key = entry.key();
      const std::string k = key.isString() ? "'" + key.toStringRef() + "'" : key.tagKind();
      flatten(entry.value(), path + "[" + k + "]", out);
    }
  } else if (value.isNone()) {
  } else if (value.isInt()) {
    out.push_back({path, torch::scalar_tensor(value.toInt(), at::kLong)});
  } else if (value.isDouble()) {
    out.push_back({path, torch::scalar_tensor(value.toDouble(), at::kDouble)});
  } else if (value.isBool()) {
    out.push_back({path, torch::scalar_tensor(value.toBool(), at::kBool)});
  } else {
    throw std::runtime_error("output " + path + " is a " + value.tagKind() + ", not a tensor");
  }
}

// -------------------------------------------------------------------- models
struct Model {
  virtual ~Model() = default;
  virtual void bind(const std::vector<at::Tensor>& inputs) = 0;  // kept for repeated calls
  virtual c10::IValue call() = 0;
};

struct ScriptModel : Model {
  torch::jit::Module module;
  std::vector<c10::IValue> args;
  ScriptModel(const std::string& path, const c10::Device& device)
      : module(torch::jit::load(path, device)) {}
  void bind(const std::vector<at::Tensor>& inputs) override { args.assign(inputs.begin(), inputs.end()); }
  c10::IValue call() override { return module.forward(args); }
};

struct AotiModel : Model {
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  std::vector<at::Tensor> args;
  AotiModel(const std::string& path, const c10::Device& device) {
    const c10::DeviceIndex index = device.is_cpu() ? -1 : device.index();
    loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path, "model", false, 1, index);
  }
  void bind(const std::vector<at::Tensor>& inputs) override { args = inputs; }
  c10::IValue call() override {
    const auto outs = loader->run(args);
    return c10::IValue(c10::List<at::Tensor>(outs));
  }
};

// -------------------------------------------------------------------- timing
// The loop of harness/engine/timing.py, step for step, on the steady clock.
struct TimingConfig {
  double min_time = 0.1, max_time = 5.0, warmup_time = 0.02, max_warmup_time = 2.0;
  int64_t min_repeats = 7, max_repeats = 1000;
};

struct Timing {
  std::vector<double> samples;
  int64_t number = 1;
  int64_t warmup_calls = 0;
};

double now_s() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

class Timer {
 public:
  Timer(Model& model, const c10::Device& device) : model_(model), device_(device) {}

  double block(int64_t number) {
    sync();
    const double start = now_s();
    for (int64_t i = 0; i < number; ++i) model_.call();
    sync();
    return now_s() - start;
  }

  int64_t warm_up(const TimingConfig& c) {
    int64_t calls = 0;
    double fastest = std::numeric_limits<double>::infinity();
    const double began = now_s();
    while (true) {
      const double t = block(1);
      ++calls;
      fastest = std::min(fastest, t);
      const double elapsed = now_s() - began;
      const bool settled = calls >= 2 && t <= 1.2 * fastest;
      if ((elapsed >= c.warmup_time && settled) || elapsed >= c.max_warmup_time) return calls;
    }
  }

  Timing measure(const TimingConfig& c) {
    Timing out;
    out.warmup_calls = warm_up(c);
    const double target = c.min_time / static_cast<double>(c.min_repeats);
    int64_t number = 1;
    double t = 0;
    while (true) {
      t = block(number);
      if (t >= target || number >= 10000000) break;
      // Jump towards the target, at most x100 per step, at least x2.
      const double grow = target / std::max(t, 1e-9) * 1.2;
      const double next = std::ceil(static_cast<double>(number) * grow);
      number = static_cast<int64_t>(std::min(std::max(2.0 * number, next), 100.0 * number));
    }
    out.number = number;
    out.samples.push_back(t / number);
    double total = t;
    while ((total < c.min_time || static_cast<int64_t>(out.samples.size()) < c.min_repeats) &&
           static_cast<int64_t>(out.samples.size()) < c.max_repeats && total < c.max_time) {
      t = block(number);
      out.samples.push_back(t / number);
      total += t;
    }
    return out;
  }

 private:
  void sync() {
    if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
  }
  Model& model_;
  c10::Device device_;
};

// -------------------------------------------------------- instruction counts
// Counted inside this process: the harness starts the runner under `valgrind
// --tool=callgrind --instr-atstart=no --collect-atstart=no`, so the load and
// everything but the counted calls run uninstrumented (several times faster).
// Instrumentation goes on for the warm-up calls, collection around the counted
// calls alone (one when a warm call took over slow_s), then one dump.
#ifdef TP_CALLGRIND
struct Collecting {  // collection and instrumentation off again, even on an error
  bool on = false;
  ~Collecting() {
    if (on) CALLGRIND_TOGGLE_COLLECT;
    CALLGRIND_STOP_INSTRUMENTATION;
  }
};
#endif

int64_t count_calls(Model& model, int64_t warmup, int64_t calls, double slow_s) {
#ifdef TP_CALLGRIND
  if (!RUNNING_ON_VALGRIND) throw std::runtime_error("count: the runner is not running under valgrind");
  Collecting collecting;
  CALLGRIND_START_INSTRUMENTATION;
  double last = 0;
  for (int64_t i = 0; i < warmup; ++i) {
    const double began = now_s();
    model.call();
    last = now_s() - began;
  }
  if (last > slow_s) calls = 1;
  CALLGRIND_TOGGLE_COLLECT;
  collecting.on = true;
  for (int64_t i = 0; i < calls; ++i) model.call();
  CALLGRIND_TOGGLE_COLLECT;
  collecting.on = false;
  CALLGRIND_DUMP_STATS;  // this count alone: dumping zeroes the counters
  return calls;
#else
  (void)model, (void)warmup, (void)calls, (void)slow_s;
  throw std::runtime_error("count: this runner was built without valgrind's callgrind.h");
#endif
}

// ---------------------------------------------------------------- protocol
std::string json_string(const std::string& s) {
  std::ostringstream out;
  out << '"';
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out << '\\' << ch;
    } else if (ch < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out << buf;
    } else {
      out << ch;
    }
  }
  out << '"';
  return out.str();
}

// The line that says what went wrong: TorchScript's "The following operation
// failed in the TorchScript interpreter." is followed by a traceback and the
// real "RuntimeError: ..." last, so an "...Error: " line wins over the first.
std::string one_line(const std::string& text) {
  std::istringstream in(text);
  std::string line, first, error;
  while (std::getline(in, line)) {
    const auto begin = line.find_first_not_of(" \t\r");
    if (begin == std::string::npos) continue;
    line = line.substr(begin);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (first.empty()) first = line;
    const auto colon = line.find(": ");
    if (colon != std::string::npos && colon >= 5 && line.compare(colon - 5, 5, "Error") == 0 &&
        line.find(' ') >= colon)
      error = line;
  }
  if (!error.empty()) return error;
  return first.empty() ? "(no message)" : first;
}

void reply(const std::string& status, const std::string& payload) {
  std::cout << kPrefix << ' ' << status << ' ' << payload << std::endl;  // endl flushes
}

std::string error_text(const std::exception& e) {
  if (const auto* c10e = dynamic_cast<const c10::Error*>(&e)) return c10e->what_without_backtrace();
  return e.what();
}

void fault(const char* where) {
  // Test hook (tests/test_cpp_errors.py): make the real binary die like a crash would.
  const char* f = std::getenv("TORCHPARITY_RUNNER_FAULT");
  if (f && std::string(f) == std::string("abort-on-") + where) std::abort();
}

struct Options {
  std::string kind, artifact, workdir, device = "cpu";
  int threads = 0, interop_threads = 0;
  long parent_pid = 0;
};

std::vector<at::Tensor> load_inputs(const Options& o, const c10::Device& device) {
  std::vector<at::Tensor> inputs;
  for (auto& item : read_tensors(o.workdir + "/inputs.bin")) inputs.push_back(item.tensor.to(device));
  return inputs;
}

std::string handle(const std::string& line, Model& model, const Options& o, const c10::Device& device) {
  std::istringstream words(line);
  std::string command;
  words >> command;
  torch::NoGradGuard no_grad;  // as the Python backends call their artifacts
  model.bind(load_inputs(o, device));
  if (command == "run") {
    fault("run");
    std::vector<Named> leaves;
    flatten(model.call(), "", leaves);
    write_tensors(o.workdir + "/outputs.bin", leaves);
    return "{\"outputs\": " + std::to_string(leaves.size()) + "}";
  }
  if (command == "time") {
    TimingConfig c;
    if (!(words >> c.min_time >> c.min_repeats >> c.max_repeats >> c.max_time >> c.warmup_time >>
          c.max_warmup_time))
      throw std::runtime_error("time needs 6 numbers");
    const Timing t = Timer(model, device).measure(c);
    std::ostringstream out;
    out.precision(17);
    out << "{\"number\": " << t.number << ", \"warmup_calls\": " << t.warmup_calls << ", \"samples_s\": [";
    for (size_t i = 0; i < t.samples.size(); ++i) out << (i ? ", " : "") << t.samples[i];
    out << "]}";
    return out.str();
  }
  if (command == "count") {
    int64_t warmup = 0, calls = 0;
    double slow_s = 0;
    if (!(words >> warmup >> calls >> slow_s) || warmup < 1 || calls < 1)
      throw std::runtime_error("count needs 3 numbers: warm-up calls, counted calls (both >= 1), slow call s");
    return "{\"calls\": " + std::to_string(count_calls(model, warmup, calls, slow_s)) + "}";
  }
  throw std::runtime_error("unknown command: " + command);
}

void watch_parent(long pid) {
  // A worker killed for a timeout must not leave its runner computing forever.
#ifdef _WIN32
  HANDLE parent = OpenProcess(SYNCHRONIZE, FALSE, static_cast<DWORD>(pid));
  if (!parent) return;
  std::thread([parent] {
    WaitForSingleObject(parent, INFINITE);
    std::_Exit(3);
  }).detach();
#else
  std::thread([pid] {
    while (getppid() == static_cast<pid_t>(pid)) std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::_Exit(3);
  }).detach();
#endif
}

Options parse(int argc, char** argv) {
  Options o;
  std::map<std::string, std::string> kv;
  for (int i = 1; i + 1 < argc; i += 2) kv[argv[i]] = argv[i + 1];
  auto take = [&](const char* key, std::string& into) {
    if (kv.count(key)) into = kv[key];
  };
  take("--kind", o.kind);
  take("--artifact", o.artifact);
  take("--workdir", o.workdir);
  take("--device", o.device);
  if (kv.count("--threads")) o.threads = std::stoi(kv["--threads"]);
  if (kv.count("--interop-threads")) o.interop_threads = std::stoi(kv["--interop-threads"]);
  if (kv.count("--parent-pid")) o.parent_pid = std::stol(kv["--parent-pid"]);
  if ((o.kind != "torchscript" && o.kind != "aoti") || o.artifact.empty() || o.workdir.empty())
    throw std::runtime_error("usage: torchparity-runner --kind torchscript|aoti --artifact PATH --workdir DIR");
  return o;
}

std::unique_ptr<Model> load_model(const Options& o, const c10::Device& device) {
  fault("load");
  if (o.kind == "torchscript") return std::make_unique<ScriptModel>(o.artifact, device);
  return std::make_unique<AotiModel>(o.artifact, device);
}

int serve(const Options& o) {
  if (o.parent_pid) watch_parent(o.parent_pid);
  // Same pools as the Python side; inter-op threads only before first use.
  if (o.interop_threads > 0) at::set_num_interop_threads(o.interop_threads);
  if (o.threads > 0) at::set_num_threads(o.threads);
  const c10::Device device(o.device);
  const double began = now_s();
  std::unique_ptr<Model> model;
  try {
    model = load_model(o, device);
  } catch (const std::exception& e) {
    std::cerr << error_text(e) << std::endl;
    reply("error", "load: " + one_line(error_text(e)));
    return 1;
  }
  std::ostringstream ready;
  ready << "{\"libtorch\": \"" TP_STR(TORCH_VERSION_MAJOR) "." TP_STR(TORCH_VERSION_MINOR) "." TP_STR(
               TORCH_VERSION_PATCH) "\", \"compiler\": "
        << json_string(TP_COMPILER) << ", \"load_s\": " << (now_s() - began)
        << ", \"threads\": " << at::get_num_threads() << ", \"interop_threads\": " << at::get_num_interop_threads()
        << ", \"callgrind\": " << (kCallgrind ? "true" : "false") << "}";
  reply("ready", ready.str());
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line == "quit") break;
    try {
      reply("ok", handle(line, *model, o, device));
    } catch (const std::exception& e) {
      std::cerr << error_text(e) << std::endl;
      reply("error", one_line(error_text(e)));
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (!little_endian()) {
    std::cerr << "torchparity-runner: the tensor format is little-endian; this host is not" << std::endl;
    return 2;
  }
  try {
    if (argc == 4 && std::string(argv[1]) == "--roundtrip") {
      write_tensors(argv[3], read_tensors(argv[2]));
      return 0;
    }
    if (argc == 2 && std::string(argv[1]) == "--version") {
      std::cout << TP_STR(TORCH_VERSION_MAJOR) "." TP_STR(TORCH_VERSION_MINOR) "." TP_STR(TORCH_VERSION_PATCH)
                << ' ' << TP_COMPILER << std::endl;
      return 0;
    }
    return serve(parse(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "torchparity-runner: " << error_text(e) << std::endl;
    return 2;
  }
}

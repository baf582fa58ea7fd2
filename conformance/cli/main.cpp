// iommuspec: the command line. See `iommuspec --help` and README.md.
#include "fuzz/fuzz.h"
#include "hw/compile.h"
#include "iommufd/clauses.h"
#include "kernel/kernel.h"
#include "runner/runner.h"
#include "scenario/encode.h"
#include "smmuv3/clauses.h"
#include "solvers/prove.h"
#include "targets/protocol_target.h"
#include "targets/qemu_target.h"
#include "vtd/clauses.h"

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fmt/format.h>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>
#include <unistd.h>

#ifndef IOMMUSPEC_VERSION
#define IOMMUSPEC_VERSION "0.0.0"
#endif
#ifndef IOMMUSPEC_SUITES_DIR
#define IOMMUSPEC_SUITES_DIR "conformance/suites"
#endif

namespace fs = std::filesystem;
using namespace iommuspec;

namespace {

constexpr int kExitOk = 0, kExitDeviation = 1, kExitUsage = 2;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string default_suites() {
  if (const char* e = std::getenv("IOMMUSPEC_SUITES")) return e;
  return IOMMUSPEC_SUITES_DIR;
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

struct TargetSpec {
  std::string name;
  iommufd::Profile profile;
  std::function<std::unique_ptr<conformance::Target>()> make;
};

struct TargetOptions {
  std::string program;              // external
  std::vector<std::string> devices; // kernel-local: VFIO cdevs
  bool allow_host = false;          // kernel-local
};

const std::vector<std::string>& target_names() {
  static const std::vector<std::string> n = {"model",       "kernel-mock", "kernel-local",
                                             "qemu-smmuv3", "qemu-vtd",    "external"};
  return n;
}

// The agent next to this executable, or $IOMMUSPEC_AGENT.
std::string agent_path() {
  if (const char* e = std::getenv("IOMMUSPEC_AGENT")) return e;
  std::error_code ec;
  const auto self = fs::read_symlink("/proc/self/exe", ec);
  const auto p = self.parent_path() / "iommuspec-agent";
  if (ec || !fs::exists(p))
    throw UsageError("cannot find iommuspec-agent next to iommuspec; set IOMMUSPEC_AGENT");
  return p.string();
}

// A factory whose first target is made now (to learn the target's profile and features)
// and handed out first.
TargetSpec from_factory(const std::string& name, std::optional<iommufd::Profile> profile,
                        std::function<std::unique_ptr<conformance::Target>()> make) {
  auto first = std::make_shared<std::unique_ptr<conformance::Target>>(make());
  const auto p = profile.value_or((*first)->info().profile);
  return {name, p, [first, make]() -> std::unique_ptr<conformance::Target> {
            if (*first) return std::move(*first);
            return make();
          }};
}

TargetSpec make_target_spec(const std::string& name, std::optional<iommufd::Profile> profile,
                            const TargetOptions& o = {}) {
  if (name == "model") {
    const auto p = profile.value_or(iommufd::Profile::linux_latest);
    return {name, p, [p] { return conformance::make_model_target(p); }};
  }
  if (name == "external") {
    if (o.program.empty())
      throw UsageError("--target external needs --program 'COMMAND ARGS' (a program speaking "
                       "the line protocol on stdin/stdout; try --program 'iommuspec serve-model')");
    return from_factory(name, profile,
                        [c = o.program] { return conformance::make_external_target(c); });
  }
  if (name == "kernel-mock") {
    const std::string agent = agent_path();
    return from_factory(name, profile.value_or(iommufd::Profile::linux_6_12),
                        [agent] { return kernel::make_kernel_mock_target(agent); });
  }
  if (name == "qemu-smmuv3")
    return from_factory(name, profile, [] { return conformance::make_qemu_smmuv3_target(); });
  if (name == "qemu-vtd")
    return from_factory(name, profile, [] { return conformance::make_qemu_vtd_target(); });
  if (name == "kernel-local") {
    if (!o.allow_host || o.devices.empty())
      throw UsageError(
          "kernel-local runs the scenarios on THIS machine's /dev/iommu and binds real devices "
          "to it; it only runs when asked twice: --allow-host and one --device "
          "/dev/vfio/devices/vfioN per VFIO cdev to use (the devices must already be bound to "
          "vfio-pci; see README.md)");
    for (const auto& d : o.devices) {
      std::error_code ec;
      if (d.rfind("/dev/vfio/devices/", 0) != 0 || !fs::is_character_file(d, ec))
        throw UsageError(fmt::format("{} is not a VFIO cdev (/dev/vfio/devices/vfioN)", d));
    }
    const std::string agent = agent_path();
    return from_factory(name, profile, [agent, devs = o.devices] {
      return conformance::make_local_agent_target(agent, devs);
    });
  }
  throw UsageError(fmt::format("unknown target '{}' (targets: {}; see `iommuspec targets`)", name,
                               fmt::join(target_names(), ", ")));
}

// Parse every scenario; diagnostics go to stderr. Throws UsageError when any file is bad.
struct Loaded {
  std::vector<scenario::Scenario> scenarios;
  results::Suite suite;
};

// Parse every scenario; diagnostics go to stderr. Throws UsageError when any file is bad.
// The suite hash covers every file's name and text, so shards and reports can be matched.
Loaded load(const std::vector<std::string>& paths) {
  std::vector<std::string> errors;
  const auto files = conformance::collect_files(paths, errors);
  for (const auto& e : errors)
    std::cerr << e << "\n";
  if (!errors.empty()) throw UsageError("some suites could not be read");
  if (files.empty())
    throw UsageError("no scenario files (*.scn) found in " +
                     fmt::format("{}", fmt::join(paths, " ")));
  Loaded out;
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s)
      h = (h ^ c) * 1099511628211ull;
  };
  size_t bad = 0;
  for (const auto& f : files) {
    std::vector<scenario::Diagnostic> d;
    auto sc = scenario::parse_file(f, d);
    if (d.empty()) {
      scenario::lint(sc, d);
      conformance::hwc::lint(sc, d);
    }
    size_t errs = 0;
    for (const auto& x : d) {
      std::cerr << x.text() << "\n";
      if (!x.warning) ++errs;
    }
    mix(fs::path(f).filename().string());
    mix(scenario::print(sc));
    if (errs)
      ++bad;
    else
      out.scenarios.push_back(std::move(sc));
  }
  if (bad) throw UsageError(fmt::format("{} scenario file(s) have errors; nothing was run", bad));
  out.suite.version = IOMMUSPEC_VERSION;
  out.suite.hash = fmt::format("{:016x}", h);
  out.suite.scenarios = int(out.scenarios.size());
  return out;
}

// SIGINT/SIGTERM: finish the scenario under way, then write a partial report.
std::atomic<bool>& stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}
extern "C" void on_stop_signal(int) {
  stop_requested() = true;
}

// Progress: one rewritten line on a terminal, plain lines otherwise.
class Progress {
public:
  Progress(std::string label, bool quiet)
      : label_(std::move(label)), quiet_(quiet), tty_(isatty(2)) {}
  void operator()(size_t done, size_t total, const results::ScenarioResult& r) {
    std::lock_guard lock(mu_);
    if (r.verdict == "fail" || r.verdict == "error") ++bad_;
    if (quiet_) return;
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    const double eta = done ? el / double(done) * double(total - done) : 0;
    if (tty_) {
      std::fprintf(stderr, "\r\033[K[%zu/%zu] %s  failures %zu  ETA %.0fs  %s", done, total,
                   label_.c_str(), bad_, eta, r.id.c_str());
      if (r.verdict == "fail" || r.verdict == "error")
        std::fprintf(stderr, "\n%s %s: %s\n", r.verdict == "fail" ? "FAIL" : "ERROR", r.id.c_str(),
                     r.message.c_str());
      if (done == total) std::fprintf(stderr, "\n");
    } else {
      std::fprintf(stderr, "[%zu/%zu] %s %-11s %s%s%s\n", done, total, label_.c_str(),
                   r.verdict.c_str(), r.id.c_str(), r.message.empty() ? "" : ": ",
                   r.message.c_str());
    }
  }

private:
  std::string label_;
  bool quiet_, tty_;
  size_t bad_ = 0;
  std::mutex mu_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

// Run the loaded suite (shard `shard_i` of `shard_n`) on one target, `jobs` scenarios at a
// time. `checkpoint` receives the partial run every second or so (for partial reports).
results::Run run_target(const TargetSpec& spec, const Loaded& suite, uint64_t seed, int shard_i,
                        int shard_n, int jobs, bool quiet,
                        const std::function<void(const results::Run&)>& checkpoint = {}) {
  Progress progress(fmt::format("{} {}", spec.name, iommufd::profile_name(spec.profile)), quiet);
  const auto t0 = std::chrono::steady_clock::now();
  results::Run run;
  run.tool_version = IOMMUSPEC_VERSION;
  run.started = now_utc();
  run.seed = seed;
  run.suite = suite.suite;
  run.shard_index = shard_i;
  run.shard_count = shard_n;
  run.profile = std::string(iommufd::profile_name(spec.profile));
  // Shard first (deterministic), then split this shard over jobs.
  std::vector<scenario::Scenario> mine;
  for (size_t i = 0; i < suite.scenarios.size(); ++i)
    if (int(i % size_t(shard_n)) == shard_i) mine.push_back(suite.scenarios[i]);
  jobs = std::max(1, std::min<int>(jobs, int(mine.size())));
  std::vector<results::Run> parts(static_cast<size_t>(jobs));
  std::mutex mu;
  std::vector<results::ScenarioResult> so_far;
  auto last = std::chrono::steady_clock::now();
  auto worker = [&](int j) {
    conformance::RunOptions o;
    o.profile = spec.profile;
    o.seed = seed;
    o.shard_index = j;
    o.shard_count = jobs;
    o.stop = &stop_requested();
    o.progress = [&](size_t, size_t, const results::ScenarioResult& r) {
      std::lock_guard lock(mu);
      so_far.push_back(r);
      progress(so_far.size(), mine.size(), r);
      if (checkpoint && std::chrono::steady_clock::now() - last > std::chrono::seconds(1)) {
        last = std::chrono::steady_clock::now();
        results::Run partial = run;
        partial.target = spec.name;
        partial.scenarios = so_far;
        partial.partial = true;
        results::finalize(partial, conformance::clause_catalogue());
        checkpoint(partial);
      }
    };
    parts[size_t(j)] = conformance::run_all(mine, spec.make, o);
  };
  std::vector<std::thread> threads;
  for (int j = 1; j < jobs; ++j)
    threads.emplace_back(worker, j);
  worker(0);
  for (auto& t : threads)
    t.join();
  run.target = parts[0].target;
  run.fingerprint = parts[0].fingerprint;
  // Restore the suite order: scenario i went to job i % jobs (a stopped job ran fewer).
  std::vector<size_t> next(size_t(jobs), 0);
  for (size_t i = 0; i < mine.size(); ++i) {
    auto& p = parts[i % size_t(jobs)];
    auto& k = next[i % size_t(jobs)];
    if (k < p.scenarios.size()) run.scenarios.push_back(p.scenarios[k++]);
  }
  run.partial = run.scenarios.size() < mine.size();
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  results::finalize(run, conformance::clause_catalogue());
  return run;
}

void write_reports(const results::Run& run, const std::string& dir) {
  fs::create_directories(dir);
  results::write_json(run, dir + "/results.json");
  results::write_junit(run, dir + "/junit.xml");
  results::write_html(run, dir + "/report.html");
  results::write_acs_log(run, dir + "/acs.log");
}

std::string findings_dir() {
  if (const char* e = std::getenv("IOMMUSPEC_FINDINGS")) return e;
  return IOMMUSPEC_FINDINGS_DIR;
}

// Mark known findings; the run conforms when its failures are exactly the known ones.
int judge(results::Run& run, const std::string& findings_file) {
  std::map<std::string, std::string> known;
  if (!findings_file.empty()) {
    if (!fs::exists(findings_file)) throw UsageError("no findings file " + findings_file);
    known = results::read_findings(findings_file);
  }
  const auto c = results::apply_findings(run, known);
  results::finalize(run, conformance::clause_catalogue());
  for (const auto& u : c.unexpected)
    std::fprintf(stderr, "DEVIATION %s\n", u.c_str());
  for (const auto& m : c.missing)
    std::fprintf(stderr, "GONE %s: listed in %s but it did not fail; remove it\n", m.c_str(),
                 findings_file.c_str());
  if (!c.unexpected.empty() || !c.missing.empty()) return kExitDeviation;
  if (run.summary.error) return kExitUsage;
  return kExitOk;
}

void print_summary(const results::Run& run, const std::string& dir) {
  std::printf("%s %s: %d pass, %d fail (%d known findings), %d unsupported, %d error -> %s\n",
              run.target.c_str(), run.profile.c_str(), run.summary.pass, run.summary.fail,
              run.summary.known_findings, run.summary.unsupported, run.summary.error, dir.c_str());
}

std::pair<int, int> parse_shard(const std::string& s) {
  int i = 0, n = 1;
  if (s.empty()) return {0, 1};
  if (std::sscanf(s.c_str(), "%d/%d", &i, &n) != 2 || n < 1 || i < 0 || i >= n)
    throw UsageError(fmt::format("--shard takes I/N with 0 <= I < N, not '{}'", s));
  return {i, n};
}

std::optional<iommufd::Profile> parse_profile(const std::string& s) {
  if (s.empty()) return std::nullopt;
  auto p = iommufd::profile_from_name(s);
  if (!p) throw UsageError(fmt::format("unknown profile '{}' (linux-6.12, linux-latest)", s));
  return p;
}

// ---- prove -----------------------------------------------------------------------------------

struct ProveOptions {
  std::vector<std::string> properties;
  std::string encoder = "model";
  unsigned timeout_ms = 20000;
  std::string emit_dir, boundaries_dir;
  bool list = false;
  unsigned jobs = std::max(1u, std::thread::hardware_concurrency());
};

// The properties' results in their order, computed `jobs` at a time: each property builds
// its own z3::context, and Z3 contexts are independent, so properties run in parallel
// threads. `each` sees every result in order as soon as it and those before it are known.
void run_properties(const std::vector<solvers::Property>& props, const solvers::Options& so,
                    unsigned jobs, const std::function<void(const solvers::Result&)>& each) {
  std::vector<std::optional<solvers::Result>> done(props.size());
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next++) < props.size();) {
      auto r = props[i].run(so);
      std::lock_guard lock(mu);
      done[i] = std::move(r);
      cv.notify_all();
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < std::min<size_t>(jobs, props.size()); ++t)
    pool.emplace_back(work);
  for (size_t i = 0; i < props.size(); ++i) {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done[i].has_value(); });
    const solvers::Result r = *done[i];
    lock.unlock();
    each(r);
  }
  for (auto& t : pool)
    t.join();
}

std::vector<solvers::Property> chosen_properties(const ProveOptions& o) {
  if (o.properties.empty() && o.encoder == "model") return solvers::all_properties();
  if (o.properties.empty())
    throw UsageError("--encoder needs --property (see `iommuspec prove --list`)");
  std::vector<solvers::Property> out;
  for (const auto& name : o.properties) {
    auto p = solvers::property_with_encoder(name, o.encoder);
    if (!p)
      throw UsageError(fmt::format("unknown property '{}' or encoder '{}' (see `iommuspec prove "
                                   "--list`)",
                                   name, o.encoder));
    out.push_back(*p);
  }
  return out;
}

// Writes a scenario file and runs it on the model: "passes" (its pins are what the model
// allows) or the model's objection (for a counterexample: the stale page it still allows).
std::string write_and_replay(const std::string& dir, const solvers::ScenarioFile& f, bool& passed) {
  fs::create_directories(dir);
  const std::string path = dir + "/" + f.id + ".scn";
  results::write_atomically(path, f.text);
  std::vector<scenario::Diagnostic> d;
  auto sc = scenario::parse_file(path, d);
  if (d.empty()) {
    scenario::lint(sc, d);
    conformance::hwc::lint(sc, d);
  }
  if (!d.empty()) {
    passed = false;
    return path + ": does not compile: " + d.front().text();
  }
  auto t = conformance::make_model_target(iommufd::Profile::linux_latest);
  const auto r = conformance::run_scenario(sc, *t, iommufd::Profile::linux_latest);
  passed = r.verdict == "pass";
  return fmt::format("{}: {}", path, passed ? "passes on the model" : "on the model: " + r.message);
}

void print_result(const solvers::Result& r) {
  const std::string name =
      r.encoder == "model" ? r.property : fmt::format("{} [{}]", r.property, r.encoder);
  std::printf("%-44s %-14s %7.2fs  (%s) %s\n", name.c_str(),
              std::string(solvers::verdict_name(r.verdict)).c_str(), r.seconds, r.method.c_str(),
              r.detail.c_str());
  if (r.verdict == solvers::Verdict::counterexample && !r.values.empty()) {
    std::vector<std::string> vs;
    for (const auto& v : r.values)
      vs.push_back(fmt::format("{}={:#x}", v.name, v.value));
    std::printf("    counterexample: %s\n", fmt::format("{}", fmt::join(vs, " ")).c_str());
  }
}

int run_prove(const ProveOptions& o) {
  if (o.list) {
    for (const auto& p : solvers::all_properties())
      std::printf("%s\n    %s\n    encoders: %s\n", p.name.c_str(), p.statement.c_str(),
                  fmt::format("{}", fmt::join(solvers::encoder_names(p.name), ", ")).c_str());
    return kExitOk;
  }
  solvers::Options so;
  so.timeout_ms = o.timeout_ms;
  if (!o.boundaries_dir.empty()) {
    size_t bad = 0;
    const auto files = solvers::boundary_scenarios(so);
    for (const auto& f : files) {
      bool passed = false;
      std::printf("%s\n", write_and_replay(o.boundaries_dir, f, passed).c_str());
      bad += !passed;
    }
    std::printf("%zu boundary scenario(s), %zu failing on the model\n", files.size(), bad);
    return bad ? kExitDeviation : kExitOk;
  }
  const auto props = chosen_properties(o);
  int code = kExitOk;
  size_t counts[3] = {0, 0, 0};
  double total = 0;
  const auto t0 = std::chrono::steady_clock::now();
  run_properties(props, so, o.jobs, [&](const solvers::Result& r) {
    print_result(r);
    std::fflush(stdout);
    total += r.seconds;
    ++counts[size_t(r.verdict)];
    if (r.verdict == solvers::Verdict::counterexample) code = std::max(code, kExitDeviation);
    if (r.verdict == solvers::Verdict::unknown) code = kExitUsage;
    if (o.emit_dir.empty()) return;
    // An encoder's counterexample reproduces on the model (it objects to the fresh pin); a
    // decoder's passes there and fails a target that decodes the same wrong way.
    for (const auto& f : r.files) {
      bool passed = false;
      const std::string m = write_and_replay(o.emit_dir, f, passed);
      std::printf("    %s%s\n", m.c_str(), passed ? " (a target with this mistake fails it)" : "");
    }
  });
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("total %.2fs (%.2fs of proving on %u thread(s)): %zu proved, %zu "
              "counterexample(s), %zu unknown\n",
              wall, total, std::min<unsigned>(o.jobs, unsigned(props.size())), counts[0], counts[1],
              counts[2]);
  return code;
}

} // namespace

struct FuzzCli {
  std::string target = "model", out = "iommuspec-fuzz", area, profile;
  uint64_t runs = 1000, seed = 1;
  size_t max_actions = 16, coverage_depth = 2;
  double shrink_seconds = 120;
  bool small = false, quiet = false;
  TargetOptions topts;
};

int run_fuzz(const FuzzCli& c) {
  const auto& areas = generators::trace_areas();
  if (!c.area.empty() && std::find(areas.begin(), areas.end(), c.area) == areas.end())
    throw UsageError(fmt::format("unknown area '{}' (areas: {})", c.area, fmt::join(areas, ", ")));
  const auto spec = make_target_spec(c.target, parse_profile(c.profile), c.topts);
  auto probe = spec.make();
  const auto info = probe->info();
  conformance::fuzz::Options o;
  o.target_name = spec.name;
  o.trace.features = info.features;
  o.trace.profile = spec.profile;
  o.trace.max_actions = c.max_actions;
  o.trace.small = c.small;
  o.trace.area = c.area;
  if (o.trace.area.empty())
    for (const auto& a : generators::trace_areas())
      if (generators::area_supported(a, info.features)) {
        o.trace.area = a;
        break;
      }
  if (o.trace.area.empty() || !generators::area_supported(o.trace.area, info.features))
    throw UsageError(fmt::format("target {} has no area iommuspec can generate traces for{} "
                                 "(areas: {}; the target's features: {})",
                                 spec.name, c.area.empty() ? "" : " named " + c.area,
                                 fmt::join(generators::trace_areas(), ", "),
                                 fmt::join(info.features, " ")));
  // The probe is the first target the campaign uses.
  auto first = std::make_shared<std::unique_ptr<conformance::Target>>(std::move(probe));
  conformance::fuzz::TargetFactory make = [first, m = spec.make] {
    if (*first) return std::move(*first);
    return m();
  };
  o.seed = c.seed;
  o.runs = c.runs;
  o.out_dir = c.out;
  o.shrink_budget_seconds = c.shrink_seconds;
  o.coverage_depth = c.coverage_depth;
  o.stop = &stop_requested();
  const bool tty = isatty(2);
  const auto t0 = std::chrono::steady_clock::now();
  o.progress = [&](uint64_t done, uint64_t total, size_t failures) {
    if (c.quiet) return;
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (tty)
      std::fprintf(stderr, "\r\033[K[%llu/%llu] fuzz %s %s  failures %zu  %.0f traces/min",
                   (unsigned long long)done, (unsigned long long)total, spec.name.c_str(),
                   o.trace.area.c_str(), failures, el > 0 ? double(done) / el * 60 : 0.0);
    else if (done % 100 == 0 || done == total)
      std::fprintf(stderr, "[%llu/%llu] fuzz %s %s failures %zu\n", (unsigned long long)done,
                   (unsigned long long)total, spec.name.c_str(), o.trace.area.c_str(), failures);
  };
  o.on_shrink = [&](uint64_t run, const std::string& sig) {
    if (c.quiet) return;
    std::fprintf(stderr, "%sshrinking the failure of run %llu against %s: %s\n",
                 tty ? "\r\033[K" : "", (unsigned long long)run, spec.name.c_str(), sig.c_str());
  };
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  const auto r = conformance::fuzz::fuzz(o, make);
  if (tty && !c.quiet) std::fprintf(stderr, "\n");
  std::printf("fuzz %s (%s, seed %llu): %llu traces, %zu steps in %.1fs (%.0f traces/min "
              "running); pass %llu fail %llu error %llu unsupported %llu\n",
              spec.name.c_str(), o.trace.area.c_str(), (unsigned long long)o.seed,
              (unsigned long long)r.runs, r.steps, r.seconds,
              r.run_seconds > 0 ? double(r.runs) / r.run_seconds * 60 : 0.0,
              (unsigned long long)r.pass, (unsigned long long)r.fail, (unsigned long long)r.error,
              (unsigned long long)r.unsupported);
  bool failed = false, erred = !r.aborted.empty();
  for (const auto& f : r.failures) {
    const bool fail = f.verdict == "fail";
    failed = failed || fail;
    erred = erred || !fail;
    const std::string how =
        !fail ? "not shrunk (an error)"
        : !f.reproduced
            ? "not shrunk: it did not fail the same way on a fresh target"
            : fmt::format("shrunk to {} in {:.1f}s ({} replays{})", f.shrunk_steps,
                          f.shrink_seconds, f.replays, f.shrink_complete ? "" : ", cut short");
    std::printf("  %s run %llu: %s\n    %zu steps %s, %zu more like it\n    %s\n",
                fail ? "FAIL" : "ERROR", (unsigned long long)f.run, f.signature.c_str(),
                f.original_steps, how.c_str(), f.repeats, f.file.c_str());
  }
  if (!r.aborted.empty()) std::printf("campaign ended early: %s\n", r.aborted.c_str());
  std::printf("coverage: %zu abstract states, %zu transitions exercised", r.exercised.states(),
              r.exercised.transitions());
  if (c.coverage_depth)
    std::printf("; reachable within %zu actions (small world): %zu states, %zu transitions, "
                "%zu of them exercised (%zu model runs, %.1fs)",
                c.coverage_depth, r.reachable.states(), r.reachable.transitions(),
                r.exercised.common(r.reachable), r.reachable_runs, r.reachable_seconds);
  std::printf("\nwritten: %s/fuzz.json, %s/coverage.dot\n", c.out.c_str(), c.out.c_str());
  // As for run: 1 a deviation; 2 an infrastructure error only, or an interrupted campaign
  // (whatever it found is saved all the same).
  if (r.interrupted) {
    std::fprintf(stderr, "interrupted: %s/fuzz.json covers the traces that ran\n", c.out.c_str());
    return kExitUsage;
  }
  return failed ? kExitDeviation : erred ? kExitUsage : kExitOk;
}

int main(int argc, char** argv) {
  CLI::App app{"iommuspec: an executable specification of IOMMU translation and invalidation, "
               "replayed as conformance tests. Today: the Linux iommufd uAPI (profiles linux-6.12 "
               "and linux-latest) on the model, the test kernel (kernel-mock), this host "
               "(kernel-local) and external implementations.\nExit status: 0 every observation "
               "is allowed by the model (or is a known finding), 1 a target deviated, 2 usage or "
               "infrastructure error, or an interrupted run."};
  app.set_version_flag("--version", std::string("iommuspec ") + IOMMUSPEC_VERSION);
  app.require_subcommand(1);

  // run
  auto* run = app.add_subcommand("run", "Replay scenarios on one target and judge every step "
                                        "against the model");
  std::string target = "model", out = "iommuspec-out", shard, profile;
  std::vector<std::string> suites;
  uint64_t seed = 0;
  int jobs = 1;
  bool quiet = false;
  run->add_option("--target,-t", target,
                  "Target: model, kernel-mock, kernel-local, external (see `iommuspec targets`)")
      ->capture_default_str();
  run->add_option("--suite,-s", suites,
                  "Scenario files or directories (default: the built-in "
                  "suites, " +
                      default_suites() + ")");
  run->add_option("--out,-o", out, "Directory for results.json, junit.xml, report.html, acs.log")
      ->capture_default_str();
  run->add_option("--seed", seed, "Seed recorded in the results (generated suites use it)");
  run->add_option("--shard", shard, "Run shard I of N (I/N, 0-based), split deterministically");
  run->add_option("--jobs,-j", jobs, "Scenarios to run in parallel")->check(CLI::Range(1, 64));
  run->add_option("--profile", profile,
                  "uAPI profile: linux-6.12 or linux-latest (default: the "
                  "target's)");
  run->add_flag("--quiet,-q", quiet, "No progress output");
  std::string findings;
  run->add_option("--known-findings", findings,
                  "File of known deviations (scenario-id clause  # why): the run conforms "
                  "when its failures are exactly these");
  TargetOptions topts;
  run->add_option("--program", topts.program,
                  "external: the command to run (it speaks the line "
                  "protocol on stdin/stdout)");
  run->add_option("--device", topts.devices,
                  "kernel-local: a VFIO cdev to bind "
                  "(/dev/vfio/devices/vfioN); repeat for more");
  run->add_flag("--allow-host", topts.allow_host,
                "kernel-local: yes, run on this host's "
                "/dev/iommu");

  // certify
  auto* cert = app.add_subcommand("certify", "The main job: the default suites on the default "
                                             "targets, one report for all of them");
  std::vector<std::string> cert_targets;
  std::string cert_out = "iommuspec-certify";
  cert->add_option("--target,-t", cert_targets,
                   "Targets (default: model with both profiles, kernel-mock, qemu-smmuv3 and "
                   "qemu-vtd)");
  cert->add_option("--out,-o", cert_out, "Output directory")->capture_default_str();
  cert->add_option("--jobs,-j", jobs, "Scenarios to run in parallel")->check(CLI::Range(1, 64));
  cert->add_flag("--quiet,-q", quiet, "No progress output");

  // kernel
  auto* kern = app.add_subcommand("kernel", "The test kernel for kernel-mock (Debian's "
                                            "linux-source-6.12 with CONFIG_IOMMUFD_TEST)");
  kern->require_subcommand(1);
  auto* kbuild = kern->add_subcommand("build", "Build the test kernel, or find it in the cache "
                                               "(" +
                                                   kernel::cache_root() + ")");
  auto* kboot = kern->add_subcommand("boot", "Boot the test kernel with the agent and report "
                                             "its version and the ioctls it has");

  // serve-model
  auto* serve = app.add_subcommand("serve-model", "Serve the model on stdin/stdout with the line "
                                                  "protocol of the external target");
  serve->add_option("--profile", profile, "uAPI profile (default linux-latest)");

  // check
  auto* check = app.add_subcommand("check", "Lint scenario files (syntax, names, operations, "
                                            "clauses) and check their pinned expectations "
                                            "against the model");
  std::vector<std::string> check_files;
  check->add_option("files", check_files, "Scenario files or directories")->required();

  // explain
  auto* expl = app.add_subcommand("explain", "Print what the model allows at every step of a "
                                             "scenario, with the clause and its source");
  std::string expl_file;
  expl->add_option("file", expl_file, "Scenario file")->required();
  expl->add_option("--profile", profile, "uAPI profile (default: the first the scenario names)");

  // targets
  auto* tg = app.add_subcommand("targets", "List the targets available on this machine");

  // clauses
  auto* cl = app.add_subcommand("clauses", "List the model's clauses with their sources");
  std::string clause_area = "all";
  cl->add_option("--area", clause_area, "iommufd, smmuv3, vtd or all")
      ->check(CLI::IsMember({"iommufd", "smmuv3", "vtd", "all"}))
      ->capture_default_str();

  // merge
  auto* mrg = app.add_subcommand("merge", "Combine the results of shards (each DIR holds a "
                                          "results.json of `run --shard I/N`) into one report");
  std::vector<std::string> merge_dirs;
  std::string merge_out = "iommuspec-merged";
  mrg->add_option("dirs", merge_dirs, "Result directories of the shards")->required();
  mrg->add_option("--out,-o", merge_out, "Output directory")->capture_default_str();

  // export-kcidb
  auto* kc = app.add_subcommand("export-kcidb", "Write the KCIDB (KernelCI database) JSON of a "
                                                "results directory, for kcidb-submit");
  std::string kc_dir, kc_origin = "iommuspec", kc_out;
  kc->add_option("dir", kc_dir, "Results directory (holding results.json)")->required();
  kc->add_option("--origin", kc_origin, "KCIDB origin name of the submitter")
      ->capture_default_str();
  kc->add_option("--out,-o", kc_out, "Output file (default: standard output)");

  // prove
  auto* prv = app.add_subcommand(
      "prove",
      "Prove the model's invalidation arithmetic, queue rules and nested isolation (Z3; "
      "exhaustive where said). Exit status: 0 all proved, 1 a counterexample, 2 unknown or usage");
  ProveOptions popts;
  prv->add_option("--property", popts.properties, "Only this property (repeatable; see --list)");
  prv->add_option("--encoder", popts.encoder,
                  "Check the property with this encoder instead of the model's (see --list)")
      ->capture_default_str();
  prv->add_option("--timeout-ms", popts.timeout_ms, "Z3 time limit per solver call")
      ->capture_default_str();
  prv->add_option("--emit-dir", popts.emit_dir,
                  "Write each counterexample as scenario files here (replayed on the model)");
  prv->add_option("--boundaries", popts.boundaries_dir,
                  "Write the boundary scenarios of every invalidation encoding here (each must "
                  "pass on the model) instead of proving");
  prv->add_flag("--list", popts.list, "List the properties and their encoders");
  prv->add_option("--jobs,-j", popts.jobs,
                  "Properties proved at a time (each in its own Z3 context; default: the "
                  "cores here)")
      ->check(CLI::Range(1, 64));

  // fuzz
  auto* fz = app.add_subcommand(
      "fuzz", "Run generated traces on a target, judged by the model; shrink every failing trace "
              "by replaying it on the target and save it as a scenario file. Exit status: 0 no "
              "failure, 1 failures (saved in --out), 2 usage, infrastructure errors only, or "
              "interrupted (what was found is saved)");
  FuzzCli fo;
  fz->add_option("--target,-t", fo.target, "Target (see `iommuspec targets`)")
      ->capture_default_str();
  fz->add_option("--runs,-n", fo.runs, "Traces to generate and run")->capture_default_str();
  fz->add_option("--seed", fo.seed, "Seed: the same seed gives the same traces")
      ->capture_default_str();
  fz->add_option("--out,-o", fo.out,
                 "Directory for the shrunk failing traces (*.scn), fuzz.json and coverage.dot")
      ->capture_default_str();
  fz->add_option("--area", fo.area,
                 "Scenario area to generate: smmuv3, vtd or iommufd (default: the first of "
                 "these the target has)");
  fz->add_option("--max-actions", fo.max_actions, "Actions per trace at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 200));
  fz->add_flag("--small", fo.small, "Generate in the small world of the coverage bounds");
  fz->add_option("--shrink-seconds", fo.shrink_seconds, "Time limit of shrinking one failure")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  fz->add_option("--coverage-depth", fo.coverage_depth,
                 "Actions from the start for the reachable graph the coverage is compared with "
                 "(0: do not compute it)")
      ->capture_default_str()
      ->check(CLI::Range(0, 6));
  fz->add_option("--profile", fo.profile,
                 "uAPI profile: linux-6.12 or linux-latest (default: the target's)");
  fz->add_option("--program", fo.topts.program, "external: the command to run");
  fz->add_flag("--quiet,-q", fo.quiet, "No progress output");

  // CLI11_PARSE, with every parse error (not --help or --version) a usage error: status 2.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  // A target that dies (QEMU killed, an external program exiting) must not take the runner
  // with it: writes to it fail with EPIPE and become a TargetError instead.
  std::signal(SIGPIPE, SIG_IGN);

  try {
    if (*run) {
      const auto spec = make_target_spec(target, parse_profile(profile), topts);
      const auto [si, sn] = parse_shard(shard);
      const auto scs = load(suites.empty() ? std::vector<std::string>{default_suites()} : suites);
      std::signal(SIGINT, on_stop_signal);
      std::signal(SIGTERM, on_stop_signal);
      auto r = run_target(spec, scs, seed, si, sn, jobs, quiet,
                          [&out](const results::Run& partial) { write_reports(partial, out); });
      const int code = judge(r, findings);
      write_reports(r, out);
      print_summary(r, out);
      if (r.partial) {
        std::fprintf(stderr, "interrupted: the report in %s is partial\n", out.c_str());
        return kExitUsage;
      }
      return code;
    }
    if (*cert) {
      std::vector<TargetSpec> specs;
      if (cert_targets.empty()) {
        specs.push_back(make_target_spec("model", iommufd::Profile::linux_6_12));
        specs.push_back(make_target_spec("model", iommufd::Profile::linux_latest));
        specs.push_back(make_target_spec("kernel-mock", std::nullopt));
        specs.push_back(make_target_spec("qemu-smmuv3", std::nullopt));
        specs.push_back(make_target_spec("qemu-vtd", std::nullopt));
      }
      for (const auto& t : cert_targets)
        specs.push_back(make_target_spec(t, std::nullopt));
      const auto scs = load({default_suites()});
      std::signal(SIGINT, on_stop_signal);
      std::signal(SIGTERM, on_stop_signal);
      int code = kExitOk;
      std::vector<std::pair<results::Run, std::string>> runs;
      std::vector<results::Run> all;
      for (const auto& s : specs) {
        if (stop_requested()) break;
        const std::string sub = fmt::format("{}-{}", s.name, iommufd::profile_name(s.profile));
        auto r = run_target(s, scs, 0, 0, 1, jobs, quiet);
        const std::string kf = findings_dir() + "/" + sub + ".txt";
        code = std::max(code, judge(r, fs::exists(kf) ? kf : std::string()));
        write_reports(r, cert_out + "/" + sub);
        print_summary(r, cert_out + "/" + sub);
        runs.emplace_back(r, sub);
        all.push_back(r);
        results::write_html(all, cert_out + "/report.html"); // the one report, so far
      }
      results::write_index(runs, cert_out);
      std::printf("certification report: %s/report.html\n", cert_out.c_str());
      if (stop_requested()) return kExitUsage;
      return code;
    }
    if (*kbuild) {
      const bool tty = isatty(2);
      const auto b = kernel::build([tty](const std::string& m) {
        if (tty)
          std::fprintf(stderr, "\r\033[K%s", m.c_str());
        else
          std::fprintf(stderr, "%s\n", m.c_str());
      });
      if (tty) std::fprintf(stderr, "\n");
      std::printf("test kernel: %s\nkey: %s (linux-source-6.12 %s)\n%s\n", b.bzimage.c_str(),
                  b.key.c_str(), b.version.c_str(),
                  b.cached ? "cached: nothing built"
                           : fmt::format("built in {:.0f}s", b.seconds).c_str());
      return kExitOk;
    }
    if (*kboot) {
      const auto t0 = std::chrono::steady_clock::now();
      auto t = kernel::make_kernel_mock_target(agent_path());
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const auto i = t->info();
      std::printf("booted in %.2fs\n", s);
      for (const auto& [k, v] : i.fingerprint)
        std::printf("%-9s %s\n", k.c_str(), v.c_str());
      std::printf("%-9s %s\n", "features", fmt::format("{}", fmt::join(i.features, ",")).c_str());
      return kExitOk;
    }
    if (*prv) return run_prove(popts);
    if (*fz) return run_fuzz(fo);
    if (*serve) {
      return conformance::serve_model(
          parse_profile(profile).value_or(iommufd::Profile::linux_latest));
    }
    if (*check) {
      std::vector<std::string> errors;
      const auto files = conformance::collect_files(check_files, errors);
      for (const auto& e : errors)
        std::cerr << e << "\n";
      size_t bad = errors.size();
      for (const auto& f : files) {
        std::vector<scenario::Diagnostic> d;
        auto sc = scenario::parse_file(f, d);
        if (d.empty()) {
          scenario::lint(sc, d);
          conformance::hwc::lint(sc, d);
        }
        if (d.empty()) {
          // Pinned expectations must agree with the model in every profile the scenario names.
          auto profiles = sc.values("profile");
          if (profiles.empty()) profiles = {"linux-6.12", "linux-latest"};
          for (const auto& pn : profiles) {
            const auto p = *iommufd::profile_from_name(pn);
            auto t = conformance::make_model_target(p);
            const auto r = conformance::run_scenario(sc, *t, p);
            if (r.verdict == "error" || r.verdict == "fail") {
              scenario::Pos at{1, 1};
              for (const auto& st : r.steps)
                if (st.verdict == "fail" && st.number >= 1 && size_t(st.number) <= sc.steps.size())
                  at = sc.steps[size_t(st.number) - 1].pos;
              d.push_back({f, at, fmt::format("on the model ({}): {}", pn, r.message)});
            }
          }
        }
        for (const auto& x : d)
          std::cerr << x.text() << "\n";
        if (!d.empty()) ++bad;
      }
      std::printf("%zu file(s) checked, %zu with problems\n", files.size(), bad);
      return bad ? kExitDeviation : kExitOk;
    }
    if (*expl) {
      const auto scs = load({expl_file}).scenarios;
      auto profiles = scs.front().values("profile");
      const auto p = parse_profile(profile).value_or(
          profiles.empty() ? iommufd::Profile::linux_latest
                           : *iommufd::profile_from_name(profiles.front()));
      std::cout << conformance::explain(scs.front(), p);
      return kExitOk;
    }
    if (*tg) {
      const bool qemu = std::system("command -v qemu-system-x86_64 >/dev/null 2>&1") == 0;
      const auto kb = kernel::cached();
      std::string agent;
      try {
        agent = agent_path();
      } catch (const UsageError&) {
      }
      std::printf("%-13s %-13s %s\n", "target", "profiles", "status here");
      std::printf("%-13s %-13s %s\n", "model", "6.12, latest", "available (in process)");
      std::printf("%-13s %-13s %s\n", "kernel-mock", "6.12",
                  !qemu           ? "needs qemu-system-x86_64 (apt-get install qemu-system-x86)"
                  : agent.empty() ? "needs the iommuspec-agent binary"
                  : kb            ? ("available (test kernel cached: " + kb->bzimage + ")").c_str()
                                  : "available; the first run builds the test kernel (or run "
                                    "`iommuspec kernel build`)");
      const bool arm = std::system("command -v qemu-system-aarch64 >/dev/null 2>&1") == 0;
      std::printf("%-13s %-13s %s\n", "qemu-smmuv3", "-",
                  arm ? "available (qemu-system-aarch64, virt with its SMMUv3)"
                      : "needs qemu-system-aarch64 (apt-get install qemu-system-arm)");
      std::printf("%-13s %-13s %s\n", "qemu-vtd", "-",
                  qemu ? "available (qemu-system-x86_64, q35 with intel-iommu)"
                       : "needs qemu-system-x86_64 (apt-get install qemu-system-x86)");
      std::printf("%-13s %-13s %s\n", "kernel-local", "host's",
                  fs::exists("/dev/iommu")
                      ? "opt-in: --allow-host and --device /dev/vfio/devices/vfioN"
                      : "unavailable: this host has no /dev/iommu");
      std::printf("%-13s %-13s %s\n", "external", "its own",
                  "needs --program 'COMMAND' (e.g. 'iommuspec serve-model')");
      return kExitOk;
    }
    if (*mrg) {
      std::vector<results::Run> shards;
      for (const auto& d : merge_dirs)
        shards.push_back(results::read_json(d + "/results.json"));
      results::Run m;
      try {
        m = results::merge(shards, conformance::clause_catalogue());
      } catch (const std::runtime_error& e) {
        throw UsageError(e.what());
      }
      write_reports(m, merge_out);
      print_summary(m, merge_out);
      if (m.partial)
        std::fprintf(stderr,
                     "the merged report is partial: a shard is missing or was interrupted\n");
      return m.partial                                   ? kExitUsage
             : m.summary.fail > m.summary.known_findings ? kExitDeviation
                                                         : kExitOk;
    }
    if (*kc) {
      const auto r = results::read_json(kc_dir + "/results.json");
      const std::string j = results::kcidb_json(r, kc_origin);
      if (kc_out.empty())
        std::fwrite(j.data(), 1, j.size(), stdout);
      else
        results::write_atomically(kc_out, j);
      return kExitOk;
    }
    if (*cl) {
      auto print = [](std::span<const Clause> all) {
        for (const auto& c : all)
          std::printf("%s\n    %s\n    source: %s\n%s", std::string(c.id).c_str(),
                      std::string(c.text).c_str(), std::string(c.source).c_str(),
                      c.note.empty() ? "" : fmt::format("    note: {}\n", c.note).c_str());
      };
      if (clause_area == "all" || clause_area == "iommufd") print(iommufd::all_clauses());
      if (clause_area == "all" || clause_area == "smmuv3") print(smmuv3::all_clauses());
      if (clause_area == "all" || clause_area == "vtd") print(vtd::all_clauses());
      return kExitOk;
    }
  } catch (const UsageError& e) {
    std::cerr << "iommuspec: " << e.what() << "\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "iommuspec: " << e.what() << "\n";
    return kExitUsage;
  }
  return kExitUsage;
}

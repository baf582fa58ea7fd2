#include "targets/protocol_target.h"

#include "protocol/wire.h"
#include "targets/process.h"

#include <fmt/format.h>
#include <set>
#include <sstream>

namespace iommuspec::conformance {
namespace {

class ProtocolTarget final : public Target {
public:
  ProtocolTarget(std::string name, Peer peer)
      : name_(std::move(name)), peer_(std::move(peer)), reader_(peer_.from) {
    try {
      hello();
    } catch (...) {
      if (peer_.close) peer_.close();
      throw;
    }
  }
  void hello() {
    if (!peer_.ready_prefix.empty()) {
      // Wait for the peer to say it is ready (the agent after the kernel booted).
      std::string line;
      do {
        if (reader_.read_line(line, peer_.ready_timeout_ms) != protocol::LineReader::Status::ok)
          fail(fmt::format("not ready within {} ms", peer_.ready_timeout_ms));
      } while (line.rfind(peer_.ready_prefix, 0) != 0);
    }
    const std::string r = request("HELLO " + std::to_string(protocol::kVersion));
    kv_ = protocol::parse_kv(r);
    if (kv_.count("error")) fail("the target cannot work: " + kv_["error"]);
    info_.name = name_;
    for (const auto& [k, v] : kv_)
      if (k != "features") info_.fingerprint[k] = v;
    std::stringstream fs(kv_["features"]);
    for (std::string f; std::getline(fs, f, ',');)
      if (!f.empty()) info_.features.insert(f);
    if (auto p = iommufd::profile_from_name(kv_["profile"])) info_.profile = *p;
  }
  ~ProtocolTarget() override {
    if (peer_.to >= 0) protocol::write_all(peer_.to, "BYE\n");
    if (peer_.close) peer_.close();
  }

  TargetInfo info() const override { return info_; }
  void reset() override { request("RESET"); }
  uint64_t mem(uint64_t size) override {
    const std::string r = request("MEM " + std::to_string(size));
    return std::stoull(r);
  }
  iommufd::Observation execute(const iommufd::Call& call) override {
    const std::string line = exchange(protocol::encode_call(call));
    if (line.rfind("RET ", 0) != 0) fail("unexpected reply: " + line.substr(0, 200));
    std::string err;
    auto o = protocol::decode_ret(std::string_view(line).substr(4), err);
    if (!o) fail("malformed reply (" + err + ")");
    if (peer_.after_step)
      if (auto bad = peer_.after_step(); !bad.empty()) fail(bad);
    return *o;
  }

private:
  [[noreturn]] void fail(const std::string& what) {
    throw TargetError(fmt::format("{}: {}", name_, what), peer_.log ? peer_.log() : "");
  }
  std::string exchange(const std::string& req) {
    std::string line;
    if (!protocol::write_all(peer_.to, req)) {
      // What it said before it went away tells more than the failed write (a peer that
      // answers anything with one line and exits races our write); it is not a reply.
      if (reader_.read_line(line, 100) == protocol::LineReader::Status::ok)
        fail("the target went away (write failed); its last line: " + line.substr(0, 200));
      fail("the target went away (write failed)");
    }
    switch (reader_.read_line(line, peer_.timeout_ms)) {
    case protocol::LineReader::Status::ok:
      return line;
    case protocol::LineReader::Status::timeout:
      fail(fmt::format("no reply within {} ms", peer_.timeout_ms));
    case protocol::LineReader::Status::eof:
      fail("the target went away (end of stream)");
    default:
      fail("the target went away (reading failed)");
    }
  }
  // A request answered by "OK ..." (returns the rest).
  std::string request(const std::string& req) {
    const std::string line = exchange(req + "\n");
    if (line.rfind("OK", 0) != 0) fail("'" + req + "' refused: " + line.substr(0, 200));
    return line.size() > 3 ? line.substr(3) : std::string();
  }

  std::string name_;
  Peer peer_;
  protocol::LineReader reader_;
  std::map<std::string, std::string> kv_;
  TargetInfo info_;
};

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> w;
  std::stringstream ss(s);
  for (std::string x; ss >> x;)
    w.push_back(x);
  return w;
}

std::unique_ptr<Target> spawn_peer(const std::string& name, const std::vector<std::string>& argv) {
  const std::string dir = make_temp_dir("iommuspec-" + name + "-");
  const std::string log = dir + "/stderr.log";
  auto child = std::make_shared<Child>(spawn(argv, true, log));
  Peer p;
  p.to = child->to_child;
  p.from = child->from_child;
  p.log = [log] { return tail_of(log); };
  p.close = [child] { stop(*child, 2000); };
  return make_protocol_target(name, std::move(p));
}

// The model target behind the protocol (what `iommuspec serve-model` serves).
class ModelExecutor final : public protocol::Executor {
public:
  explicit ModelExecutor(iommufd::Profile p) : t_(make_model_target(p)) {}
  std::map<std::string, std::string> hello() override {
    const auto i = t_->info();
    // Protocol v1 carries iommufd calls only: the hardware-level areas are not served.
    std::set<std::string> hw;
    for (const char* area : {"smmuv3", "vtd"})
      for (const auto& x : hwc::hw_area_features(area))
        if (x != "viommu") hw.insert(x);
    std::string f;
    for (const auto& x : i.features)
      if (!hw.count(x)) f += (f.empty() ? "" : ",") + x;
    return {{"name", "iommuspec-serve-model"},
            {"profile", std::string(iommufd::profile_name(i.profile))},
            {"features", f}};
  }
  void reset() override { t_->reset(); }
  std::optional<uint64_t> mem(uint64_t size) override { return t_->mem(size); }
  iommufd::Observation call(const iommufd::Call& c) override { return t_->execute(c); }

private:
  std::unique_ptr<Target> t_;
};

} // namespace

std::unique_ptr<Target> make_protocol_target(std::string name, Peer peer) {
  return std::make_unique<ProtocolTarget>(std::move(name), std::move(peer));
}

std::unique_ptr<Target> make_external_target(const std::string& command) {
  const auto argv = words(command);
  if (argv.empty()) throw std::invalid_argument("external target: empty command");
  return spawn_peer("external", argv);
}

std::unique_ptr<Target> make_local_agent_target(const std::string& agent_path,
                                                const std::vector<std::string>& vfio_devices) {
  std::vector<std::string> argv = {agent_path, "--stdio"};
  for (const auto& d : vfio_devices) {
    argv.push_back("--vfio");
    argv.push_back(d);
  }
  return spawn_peer("kernel-local", argv);
}

int serve_model(iommufd::Profile profile) {
  ModelExecutor ex(profile);
  return protocol::serve(ex, 0, 1);
}

} // namespace iommuspec::conformance

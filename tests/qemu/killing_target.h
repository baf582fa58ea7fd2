// Test helper for the QEMU targets' crash handling: a target wrapper that kills its QEMU
// (SIGKILL, as a crash would) before the first access it is given.
#pragma once

#include "runner/target.h"

#include <csignal>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace iommuspec::conformance::qemu_test {

// The qemu-system-* processes this test process started (/proc/PID/stat: "pid (comm) state
// ppid ...").
inline std::vector<pid_t> qemu_children() {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    const pid_t pid = pid_t(std::atoi(e->d_name));
    if (pid <= 0) continue;
    std::ifstream f("/proc/" + std::string(e->d_name) + "/stat");
    std::string line;
    if (!std::getline(f, line)) continue;
    const auto open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    const std::string comm = line.substr(open + 1, close - open - 1);
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == getpid() && comm.starts_with("qemu-system-")) out.push_back(pid);
  }
  closedir(d);
  return out;
}

// Forwards everything to `t`; when armed, kills the QEMU children before the first access and
// adds their number to *killed (which outlives the target: a runner replaces a dead one).
class KillingTarget final : public Target {
public:
  KillingTarget(std::unique_ptr<Target> t, bool armed, int* killed)
      : t_(std::move(t)), armed_(armed), killed_(killed) {}
  TargetInfo info() const override { return t_->info(); }
  void reset() override { t_->reset(); }
  uint64_t mem(uint64_t s) override { return t_->mem(s); }
  iommufd::Observation execute(const iommufd::Call& c) override { return t_->execute(c); }
  void hw_reset(const hwc::Setup& s) override { t_->hw_reset(s); }
  void hw_write(const std::vector<hw::Write>& w) override { t_->hw_write(w); }
  hw::QueueOutcome hw_submit(const std::vector<uint64_t>& e) override { return t_->hw_submit(e); }
  hw::QueueOutcome hw_resume() override { return t_->hw_resume(); }
  uint8_t hw_register_invalidate(const std::vector<uint64_t>& e) override {
    return t_->hw_register_invalidate(e);
  }
  hw::DmaOutcome hw_dma(const hw::DmaRequest& r) override {
    if (armed_) {
      armed_ = false;
      for (pid_t p : qemu_children())
        if (::kill(p, SIGKILL) == 0) ++*killed_;
    }
    return t_->hw_dma(r);
  }
  hw::RecordsOutcome hw_records() override { return t_->hw_records(); }

private:
  std::unique_ptr<Target> t_;
  bool armed_;
  int* killed_;
};

} // namespace iommuspec::conformance::qemu_test

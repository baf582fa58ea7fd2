// The test kernel for `kernel-mock`: Debian's linux-source-6.12 configured with the iommufd
// selftest mock IOMMU (CONFIG_IOMMUFD_TEST) and what fault-capable nested HWPTs need,
// built once and cached outside the source tree (keyed by source version and config), an
// initramfs whose /init is the project's static agent, and the QEMU boot that runs it.
#pragma once

#include "runner/target.h"

#include <functional>
#include <memory>
#include <string>

namespace iommuspec::kernel {

struct Build {
  std::string key;     // hash of source version + config fragment
  std::string version; // Debian package version of linux-source-6.12
  std::string dir;     // cache directory of this build
  std::string bzimage;
  bool cached = false; // nothing was built
  double seconds = 0;
};

std::string cache_root();

// Build (or find) the test kernel. `progress` receives one-line status updates.
Build build(const std::function<void(const std::string&)>& progress);
// The cached build for the current source version, if any (no building).
std::optional<Build> cached();

// The initramfs for an agent binary (cached by the binary's hash): returns its path.
std::string initramfs(const std::string& agent_path);

// Boot the cached kernel with the agent and connect: the `kernel-mock` target.
std::unique_ptr<conformance::Target> make_kernel_mock_target(const std::string& agent_path);

// The first kernel message in `console` that makes a step an error (a WARN, BUG, Oops,
// panic, sanitizer report), or "" when there is none.
std::string trouble_in(std::string_view console);

// The config options enabled on top of tinyconfig (PLATFORM.md recipe).
const std::vector<std::string>& config_options();

} // namespace iommuspec::kernel

// A target on the other side of the line protocol (conformance/protocol/wire.h): an
// external program, the agent on this host, or the agent inside the test kernel.
#pragma once

#include "runner/target.h"

#include <functional>
#include <memory>
#include <string>

namespace iommuspec::conformance {

// How to reach a protocol peer: file descriptors to write requests to and read replies
// from, a log to quote when it fails, and a check run after every reply (e.g. a kernel
// WARN on the console) that returns a message when the step must count as an error.
struct Peer {
  int to = -1, from = -1;
  std::function<std::string()> log;
  std::function<std::string()> after_step;
  std::function<void()> close;
  int timeout_ms = 20000;
  std::string ready_prefix; // wait for a line starting with this before HELLO
  int ready_timeout_ms = 120000;
};

// Connects (HELLO) and builds the target. `name` is the target's name in results.
std::unique_ptr<Target> make_protocol_target(std::string name, Peer peer);

// `external`: run `command` (split on spaces) and speak the protocol on its stdin/stdout.
std::unique_ptr<Target> make_external_target(const std::string& command);

// `kernel-local`: the agent binary on this host's /dev/iommu, with these VFIO cdevs bound.
std::unique_ptr<Target> make_local_agent_target(const std::string& agent_path,
                                                const std::vector<std::string>& vfio_devices);

// Serve the model on stdin/stdout (`iommuspec serve-model`).
int serve_model(iommufd::Profile profile);

} // namespace iommuspec::conformance

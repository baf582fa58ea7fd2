// TargetError on its own, so that layers below the runner (the QEMU driver in qemu/) can
// report infrastructure failures without depending on the model through target.h.
#pragma once

#include <stdexcept>
#include <string>

namespace iommuspec::conformance {

// An infrastructure failure (crash, timeout, protocol error): the scenario is an `error`,
// never a `fail`, and the run goes on with a fresh target.
struct TargetError : std::runtime_error {
  std::string log;
  TargetError(const std::string& what, std::string log_excerpt = {})
      : std::runtime_error(what), log(std::move(log_excerpt)) {}
};

// The target cannot present what the scenario needs (a requester ID its machine cannot give
// a device, a mode it lacks): the scenario is `unsupported` with this reason, never `fail`.
struct TargetUnsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

} // namespace iommuspec::conformance

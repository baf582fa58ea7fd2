// Child processes for targets: spawn with pipes or with output to a log file, stop them
// cleanly (or not), read the tail of their logs for error reports.
#pragma once

#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace iommuspec::conformance {

struct Child {
  pid_t pid = -1;
  int to_child = -1;   // its stdin (when piped)
  int from_child = -1; // its stdout (when piped)
};

// Start argv[0] (searched in PATH). stdin/stdout are pipes when `pipes`, else /dev/null;
// stderr (and stdout when not piped) go to `log_path`. Throws std::runtime_error.
Child spawn(const std::vector<std::string>& argv, bool pipes, const std::string& log_path);

// Wait up to `timeout_ms` for the child to exit, then SIGKILL it. Returns its status text.
std::string stop(Child& c, int timeout_ms);

// Ask the child's process group to exit (SIGTERM), then stop() it: SIGKILL after
// `grace_ms`. For children that do not exit on their own when their input closes (QEMU).
std::string terminate(Child& c, int grace_ms);

// When the child has exited: reap it (pid becomes -1, pipes stay open) and return its
// status text ("exited 1", "killed by Aborted"); else nothing. Never blocks.
std::optional<std::string> reap_if_exited(Child& c);

// The last `max_bytes` of a file (for error reports).
std::string tail_of(const std::string& path, size_t max_bytes = 4000);

// What was appended to a file since `offset` (advanced past it): logs a child writes.
std::string read_new(const std::string& path, size_t& offset);

// A listening unix stream socket at `path` (close-on-exec). Throws std::runtime_error.
int listen_unix(const std::string& path);

// A fresh private directory under $TMPDIR.
std::string make_temp_dir(const std::string& prefix);

} // namespace iommuspec::conformance

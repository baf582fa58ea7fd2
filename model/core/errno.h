// Linux errno values as userspace sees them (include/uapi/asm-generic/errno-base.h and
// errno.h). Targets run Linux, so the model speaks in these numbers; scenario files use
// the names.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace iommuspec {

enum class Errno : int32_t {
  ok = 0,
  eperm = 1,
  enoent = 2,
  esrch = 3,
  eintr = 4,
  eio = 5,
  enxio = 6,
  e2big = 7,
  ebadf = 9,
  eagain = 11,
  enomem = 12,
  efault = 14,
  ebusy = 16,
  eexist = 17,
  enodev = 19,
  einval = 22,
  enotty = 25,
  enospc = 28,
  edom = 33,
  erange = 34,
  enosys = 38,
  ebade = 52,
  espipe = 29,
  eproto = 71,
  eoverflow = 75,
  ebadfd = 77,
  emsgsize = 90,
  eopnotsupp = 95,
  eaddrinuse = 98,
  etimedout = 110,
};

// Name of an errno ("EINVAL"), or "ok" for 0; "E?<n>" for a value not in the table.
std::string_view errno_name(Errno e);
std::optional<Errno> errno_from_name(std::string_view name);
Errno errno_from_int(int32_t v);

} // namespace iommuspec

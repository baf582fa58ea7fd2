#include "core/errno.h"

#include <array>
#include <utility>

namespace iommuspec {
namespace {

constexpr std::array kNames = {
    std::pair{Errno::ok, "ok"},
    std::pair{Errno::eperm, "EPERM"},
    std::pair{Errno::enoent, "ENOENT"},
    std::pair{Errno::esrch, "ESRCH"},
    std::pair{Errno::eintr, "EINTR"},
    std::pair{Errno::eio, "EIO"},
    std::pair{Errno::enxio, "ENXIO"},
    std::pair{Errno::e2big, "E2BIG"},
    std::pair{Errno::ebadf, "EBADF"},
    std::pair{Errno::eagain, "EAGAIN"},
    std::pair{Errno::enomem, "ENOMEM"},
    std::pair{Errno::efault, "EFAULT"},
    std::pair{Errno::ebusy, "EBUSY"},
    std::pair{Errno::eexist, "EEXIST"},
    std::pair{Errno::enodev, "ENODEV"},
    std::pair{Errno::einval, "EINVAL"},
    std::pair{Errno::enotty, "ENOTTY"},
    std::pair{Errno::enospc, "ENOSPC"},
    std::pair{Errno::edom, "EDOM"},
    std::pair{Errno::erange, "ERANGE"},
    std::pair{Errno::enosys, "ENOSYS"},
    std::pair{Errno::ebade, "EBADE"},
    std::pair{Errno::espipe, "ESPIPE"},
    std::pair{Errno::eproto, "EPROTO"},
    std::pair{Errno::eoverflow, "EOVERFLOW"},
    std::pair{Errno::ebadfd, "EBADFD"},
    std::pair{Errno::emsgsize, "EMSGSIZE"},
    std::pair{Errno::eopnotsupp, "EOPNOTSUPP"},
    std::pair{Errno::eaddrinuse, "EADDRINUSE"},
    std::pair{Errno::etimedout, "ETIMEDOUT"},
};

} // namespace

std::string_view errno_name(Errno e) {
  for (const auto& [v, n] : kNames)
    if (v == e) return n;
  return "E?";
}

std::optional<Errno> errno_from_name(std::string_view name) {
  for (const auto& [v, n] : kNames)
    if (name == n) return v;
  return std::nullopt;
}

Errno errno_from_int(int32_t v) {
  return static_cast<Errno>(v < 0 ? -v : v);
}

} // namespace iommuspec

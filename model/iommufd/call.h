// A call as a target receives it (the struct bytes the caller wrote, the bytes behind its
// user pointer) and an observation as a target reports it (errno, the struct bytes after
// the call, the bytes written behind the pointer). Object IDs in the bytes are the
// target's own; the runner maps scenario names to them.
#pragma once

#include "core/errno.h"
#include "iommufd/ops.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace iommuspec::iommufd {

constexpr size_t kMaxArg = 96; // larger than every struct in the table

// The value the encoder writes into a uptr field to mean "this call's payload"; a target
// replaces it with the address of its copy of the payload. Any other value is passed as is.
constexpr uint64_t kPayloadPtr = 0x1f'ffff'f000ull;

struct Call {
  OpId op = OpId::destroy;
  uint32_t user_size = 0;    // bytes the caller passes (the size field says the same)
  bool tail_nonzero = false; // bytes past the kernel's struct are non-zero (E2BIG test)
  std::array<uint8_t, kMaxArg> arg{};
  std::vector<uint8_t> payload; // input bytes, or output capacity (zero-filled)
};

struct Observation {
  Errno err = Errno::ok;
  std::array<uint8_t, kMaxArg> arg{};
  std::vector<uint8_t> payload;
  friend bool operator==(const Observation&, const Observation&) = default;
};

} // namespace iommuspec::iommufd

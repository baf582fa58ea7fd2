#include "qemu/edu.h"

#include <fmt/format.h>
#include <stdexcept>

namespace iommuspec::qemu {

namespace {

// BAR0 register offsets and command bits (hw/misc/edu.c, edu_mmio_write and docs/specs/
// edu.rst). 64-bit accesses are accepted from 0x80 on.
constexpr uint64_t kSrc = 0x80, kDst = 0x88, kCount = 0x90, kCmd = 0x98;
constexpr uint64_t kCmdRun = 1 << 0, kCmdToMemory = 1 << 1;

} // namespace

Edu::Edu(QtestClient& q, const QemuMachine& m, EduOptions opts) : q_(q), opts_(opts) {
  PciConfig cfg(q, m);
  const auto d = find_device(cfg, vendor, device);
  if (!d) throw TargetError("no edu device (1234:11e8) on bus 0 of " + m.name, q.log_excerpt());
  bdf_ = *d;
  bar0_ = enable_bar0(cfg, bdf_, m).base;
  staging_ = {m.scratch, m.scratch};
}

Edu::Edu(QtestClient& q, const QemuMachine& m, Bdf d, uint64_t bar_at, EduOptions opts)
    : q_(q), opts_(opts), bdf_(d) {
  PciConfig cfg(q, m);
  if (cfg.read16(d, pcireg::vendor_id) != vendor || cfg.read16(d, pcireg::device_id) != device)
    throw TargetError("no edu device (1234:11e8) at " + d.str() + " of " + m.name, q.log_excerpt());
  bar0_ = enable_bar0(cfg, bdf_, m, bar_at).base;
  staging_ = {m.scratch, m.scratch};
}

void Edu::check_length(size_t len, size_t buffer_offset) const {
  if (len == 0 || buffer_offset + len > max_transfer)
    throw std::invalid_argument(
        fmt::format("edu transfer of {} bytes at buffer offset {}: QEMU 7.2 aborts unless "
                    "1 <= offset + length <= {}",
                    len, buffer_offset, max_transfer));
}

void Edu::transfer(uint64_t device_addr, size_t len, bool to_memory, size_t buffer_offset) {
  check_length(len, buffer_offset);
  const uint64_t buf = buffer + buffer_offset;
  // The four register writes and the first poll in one qtest round trip.
  const std::string start[] = {
      fmt::format("writeq {:#x} {:#x}", bar0_ + kSrc, to_memory ? buf : device_addr),
      fmt::format("writeq {:#x} {:#x}", bar0_ + kDst, to_memory ? device_addr : buf),
      fmt::format("writeq {:#x} {:#x}", bar0_ + kCount, len),
      fmt::format("writeq {:#x} {:#x}", bar0_ + kCmd, kCmdRun | (to_memory ? kCmdToMemory : 0)),
      fmt::format("readq {:#x}", bar0_ + kCmd)};
  const auto cmd = parse_hex(q_.commands(start).back());
  if (!cmd) throw TargetError("edu: malformed command register reply", q_.log_excerpt());
  if (!(*cmd & kCmdRun)) {
    last_polls_ = 1;
    return;
  }
  for (int polls = 2; polls <= opts_.max_polls; ++polls) {
    if (!(q_.readq(bar0_ + kCmd) & kCmdRun)) {
      last_polls_ = polls;
      return;
    }
  }
  throw TargetError(fmt::format("edu DMA of {} bytes {} {:#x} not done after {} polls", len,
                                to_memory ? "to" : "from", device_addr, opts_.max_polls),
                    q_.log_excerpt());
}

std::vector<uint8_t> Edu::dma_read(uint64_t device_addr, size_t len) {
  if (len == 0) return {};
  transfer(device_addr, len, false);
  transfer(staging_.device_addr, len, true);
  return q_.read(staging_.phys_addr, len);
}

void Edu::dma_write(uint64_t device_addr, std::span<const uint8_t> bytes) {
  if (bytes.empty()) return;
  check_length(bytes.size(), 0);
  q_.write(staging_.phys_addr, bytes);
  transfer(staging_.device_addr, bytes.size(), false);
  transfer(device_addr, bytes.size(), true);
}

} // namespace iommuspec::qemu

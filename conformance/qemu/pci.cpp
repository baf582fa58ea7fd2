#include "qemu/pci.h"

#include <algorithm>
#include <fmt/format.h>
#include <map>
#include <set>

namespace iommuspec::qemu {

namespace {

// ECAM (PCIe Base Spec 7.2.2): 4 KiB of configuration space per function.
uint64_t ecam_address(const QemuMachine& m, Bdf d, uint16_t offset) {
  return m.ecam_base +
         (uint64_t(d.bus) << 20 | uint64_t(d.dev) << 15 | uint64_t(d.fn) << 12 | offset);
}

// Configuration mechanism #1 (PCI Local Bus Spec 3.0, 3.2.2.3.2): enable bit 31, bus,
// device, function, dword-aligned register in CONFIG_ADDRESS at 0xCF8; the bytes of that
// dword at CONFIG_DATA 0xCFC..0xCFF.
constexpr uint16_t kConfigAddress = 0xcf8, kConfigData = 0xcfc;
uint32_t cf8_address(Bdf d, uint16_t offset) {
  return 0x8000'0000u | uint32_t(d.bus) << 16 | uint32_t(d.dev) << 11 | uint32_t(d.fn) << 8 |
         (offset & 0xfcu);
}

} // namespace

std::string Bdf::str() const {
  return fmt::format("{:02x}:{:02x}.{:x}", bus, dev, fn);
}

uint32_t PciConfig::read(Bdf d, uint16_t offset, int size) {
  if (m_.pci_access == PciConfigAccess::ecam) {
    const uint64_t a = ecam_address(m_, d, offset);
    return size == 1 ? q_.readb(a) : size == 2 ? q_.readw(a) : q_.readl(a);
  }
  q_.outl(kConfigAddress, cf8_address(d, offset));
  const uint16_t port = uint16_t(kConfigData + (offset & 3));
  return size == 1 ? q_.inb(port) : size == 2 ? q_.inw(port) : q_.inl(port);
}

void PciConfig::write(Bdf d, uint16_t offset, int size, uint32_t value) {
  if (m_.pci_access == PciConfigAccess::ecam) {
    const uint64_t a = ecam_address(m_, d, offset);
    if (size == 1)
      q_.writeb(a, uint8_t(value));
    else if (size == 2)
      q_.writew(a, uint16_t(value));
    else
      q_.writel(a, value);
    return;
  }
  q_.outl(kConfigAddress, cf8_address(d, offset));
  const uint16_t port = uint16_t(kConfigData + (offset & 3));
  if (size == 1)
    q_.outb(port, uint8_t(value));
  else if (size == 2)
    q_.outw(port, uint16_t(value));
  else
    q_.outl(port, value);
}

std::optional<Bdf> find_device(PciConfig& cfg, uint16_t vendor, uint16_t device) {
  for (uint8_t dev = 0; dev < 32; ++dev) {
    for (uint8_t fn = 0; fn < 8; ++fn) {
      const Bdf d{0, dev, fn};
      const uint32_t id = cfg.read32(d, pcireg::vendor_id);
      if (uint16_t(id) == 0xffff) { // no function here (reads of absent ones return ones)
        if (fn == 0) break;
        continue;
      }
      if (uint16_t(id) == vendor && uint16_t(id >> 16) == device) return d;
      if (fn == 0 && !(cfg.read8(d, pcireg::header_type) & 0x80)) break; // single-function
    }
  }
  return std::nullopt;
}

Bar enable_bar0(PciConfig& cfg, Bdf d, const QemuMachine& m, uint64_t at) {
  const uint32_t original = cfg.read32(d, pcireg::bar0);
  if (original & 1) throw TargetError("BAR0 of " + d.str() + " is an I/O BAR");
  const bool is64 = ((original >> 1) & 3) == 2; // type field, bits 2:1 (6.2.5.1)
  // Decoding off while sizing, so that the all-ones address decodes nothing.
  const uint16_t command = cfg.read16(d, pcireg::command);
  cfg.write(d, pcireg::command, 2, command & ~(pcireg::cmd_memory | pcireg::cmd_bus_master));
  cfg.write(d, pcireg::bar0, 4, 0xffff'ffff);
  uint64_t mask = cfg.read32(d, pcireg::bar0) & ~0xfu;
  if (is64) {
    cfg.write(d, pcireg::bar0 + 4, 4, 0xffff'ffff);
    mask |= uint64_t(cfg.read32(d, pcireg::bar0 + 4)) << 32;
  } else {
    mask |= 0xffff'ffff'0000'0000;
  }
  const uint64_t size = ~mask + 1;
  const uint64_t base = (std::max(m.bar_window, at) + size - 1) & ~(size - 1);
  if (mask == 0xffff'ffff'0000'0000 || base + size > m.bar_window + m.bar_window_size)
    throw TargetError(fmt::format("BAR0 of {} (size {:#x}) does not fit the window {:#x}+{:#x}",
                                  d.str(), size, m.bar_window, m.bar_window_size));
  cfg.write(d, pcireg::bar0, 4, uint32_t(base) | (original & 0xfu));
  if (is64) cfg.write(d, pcireg::bar0 + 4, 4, uint32_t(base >> 32));
  cfg.write(d, pcireg::command, 2, command | pcireg::cmd_memory | pcireg::cmd_bus_master);
  return {base, size};
}

std::vector<std::string> edu_devices(const std::vector<Bdf>& at) {
  std::map<uint8_t, std::set<uint8_t>> slots; // device -> functions
  for (const Bdf& b : at)
    slots[b.dev].insert(b.fn);
  std::vector<std::string> out;
  for (auto& [dev, fns] : slots) {
    const bool multi = fns.size() > 1 || *fns.begin() != 0;
    fns.insert(0);
    // Function 0 first: QEMU checks the slot's multi-function bit when the others arrive.
    for (uint8_t fn : fns)
      out.push_back(fmt::format("edu,dma_mask=0xffffffffffffffff,addr={:#x}.{}{}", dev, fn,
                                multi && fn == 0 ? ",multifunction=on" : ""));
  }
  return out;
}

} // namespace iommuspec::qemu

// PCI configuration space of a QEMU machine through qtest, with the little the project
// needs of enumeration: find a device on the root bus, place its BAR0 in the machine's
// MMIO window and let it decode memory and master DMA (what firmware would have done).
#pragma once

#include "qemu/machine.h"
#include "qemu/qtest.h"

#include <cstdint>
#include <optional>
#include <string>

namespace iommuspec::qemu {

struct Bdf {
  uint8_t bus = 0, dev = 0, fn = 0;
  // The requester ID (PCIe Base Spec 2.2.6.2: bus[15:8] dev[7:3] fn[2:0]): the SMMU's
  // StreamID on virt (hw/arm/smmu-common.c, smmu_get_sid) and VT-d's source-id.
  uint16_t rid() const { return uint16_t(bus << 8 | dev << 3 | fn); }
  std::string str() const; // "00:01.0"
  bool operator==(const Bdf&) const = default;
};

// Configuration register offsets (PCI Local Bus Spec 3.0, 6.1).
namespace pcireg {
constexpr uint16_t vendor_id = 0x00, device_id = 0x02, command = 0x04, header_type = 0x0e,
                   bar0 = 0x10;
// Command register bits (6.2.2).
constexpr uint16_t cmd_memory = 1 << 1, cmd_bus_master = 1 << 2;
} // namespace pcireg

class PciConfig {
public:
  PciConfig(QtestClient& q, const QemuMachine& m) : q_(q), m_(m) {}
  uint32_t read(Bdf d, uint16_t offset, int size);
  void write(Bdf d, uint16_t offset, int size, uint32_t value);
  uint32_t read32(Bdf d, uint16_t off) { return read(d, off, 4); }
  uint16_t read16(Bdf d, uint16_t off) { return uint16_t(read(d, off, 2)); }
  uint8_t read8(Bdf d, uint16_t off) { return uint8_t(read(d, off, 1)); }

private:
  QtestClient& q_;
  const QemuMachine& m_;
};

// The first function on bus 0 with this vendor and device ID (functions 1-7 only of
// multi-function devices, header type bit 7), in device/function order.
std::optional<Bdf> find_device(PciConfig& cfg, uint16_t vendor, uint16_t device);

struct Bar {
  uint64_t base = 0, size = 0;
};

// Size BAR0 (write all ones, read back the mask: 6.2.5.1), place it at the start of the
// machine's window (aligned to its size), enable memory decoding and bus mastering.
// Memory BARs only, 32- or 64-bit. Throws TargetError when the BAR does not fit.
// `at`: the lowest address to use (for several devices: after the previous one's BAR).
Bar enable_bar0(PciConfig& cfg, Bdf d, const QemuMachine& m, uint64_t at = 0);

// The -device values for edu devices at these functions of bus 0 (QEMU's `addr=DEV.FN`). A
// function other than 0 needs function 0 of its slot to be a multi-function device (QEMU
// hw/pci/pci.c refuses it otherwise): an edu is put there too when the list lacks it.
std::vector<std::string> edu_devices(const std::vector<Bdf>& at);

} // namespace iommuspec::qemu

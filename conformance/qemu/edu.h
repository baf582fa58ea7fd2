// QEMU's edu device (hw/misc/edu.c) as a DMA engine behind the IOMMU: it copies between
// memory, at device (I/O virtual) addresses, and a 4 KiB buffer of its own at device
// address 0x40000. BAR0 registers: 0x80 source, 0x88 destination, 0x90 count, 0x98
// command (bit 0 start: stays set until the transfer is done; bit 1 direction, 0 memory to
// buffer, 1 buffer to memory; bit 2 interrupt when done). The transfer runs from a timer
// 100 ms of virtual time after the start (dma_rw), so icount makes it immediate.
//
// The buffer is not readable through BAR0 (edu_mmio_read answers ~0 beyond the
// registers): bytes reach it or leave it only by DMA. So dma_read and dma_write copy
// through a staging area, a device address that the caller guarantees reaches a known
// physical address (with the IOMMU off, the same address; with it on, a mapping the
// scenario's target sets up).
//
// QEMU 7.2 aborts (hw_error) when a transfer leaves the buffer: its edu_check_range wants
// the end strictly below 0x41000, so 1..4095 bytes; the driver refuses larger ones.
//
// What a translation fault looks like from edu (measured on 7.2): nothing. The command
// completes as usual (bit 0 clears, edu ignores the MemTxResult); a faulted read fills the
// buffer with zeros (the unassigned region reads 0); a faulted write leaves memory as it
// was. QEMU retries a faulted access 4 bytes at a time, so an N-byte faulted transfer
// makes about N/4 translation requests (and as many fault records when recorded).
#pragma once

#include "qemu/machine.h"
#include "qemu/pci.h"
#include "qemu/qtest.h"

#include <cstdint>
#include <span>
#include <vector>

namespace iommuspec::qemu {

struct Staging {
  uint64_t device_addr = 0; // as the device (through the IOMMU) sees it
  uint64_t phys_addr = 0;   // where that lands in RAM (qtest reads and writes here)
};

struct EduOptions {
  // Polls of the command register before a transfer counts as hung (each one a qtest
  // round trip of 10-30 us; measured 0 to ~160 polls per transfer with icount).
  int max_polls = 100000;
};

class Edu {
public:
  static constexpr uint16_t vendor = 0x1234, device = 0x11e8; // hw/misc/edu.c
  static constexpr uint64_t buffer = 0x40000;                 // DMA_START
  static constexpr size_t max_transfer = 4095;                // see above

  // Finds the device, enables BAR0 and bus mastering. Staging defaults to the machine's
  // scratch area at its physical address (right while the IOMMU translates nothing).
  Edu(QtestClient& q, const QemuMachine& m, EduOptions opts = {});
  // The edu at `d`, its BAR0 placed at or above `bar_at` (several devices: one after the
  // other; see bar0() and enable_bar0).
  Edu(QtestClient& q, const QemuMachine& m, Bdf d, uint64_t bar_at, EduOptions opts = {});

  Bdf bdf() const { return bdf_; }
  uint64_t bar0() const { return bar0_; }
  const Staging& staging() const { return staging_; }
  void set_staging(Staging s) { staging_ = s; }

  // One transfer between memory at `device_addr` and the buffer at `buffer_offset`,
  // waited for. `to_memory` false: memory -> buffer (the device reads), true: buffer ->
  // memory (the device writes). Throws TargetError when it does not complete.
  void transfer(uint64_t device_addr, size_t len, bool to_memory, size_t buffer_offset = 0);

  // The bytes the device reads at `device_addr` (a read DMA, then a write DMA of them to
  // the staging area, read there by qtest).
  std::vector<uint8_t> dma_read(uint64_t device_addr, size_t len);
  // The device writes `bytes` at `device_addr` (qtest puts them in the staging area, a read
  // DMA brings them into the buffer, a write DMA sends them out).
  void dma_write(uint64_t device_addr, std::span<const uint8_t> bytes);

  // The polls the last transfer needed (for the benchmark and for tuning max_polls).
  int last_polls() const { return last_polls_; }

private:
  void check_length(size_t len, size_t buffer_offset) const;

  QtestClient& q_;
  EduOptions opts_;
  Bdf bdf_;
  uint64_t bar0_ = 0;
  Staging staging_;
  int last_polls_ = 0;
};

} // namespace iommuspec::qemu

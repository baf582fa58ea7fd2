// An Intel VT-d remapping unit as a device access sees it: root, context and PASID structures
// and paging structures in memory, the invalidation queue, the fault recording registers, and
// the caches an implementation may keep. For each access the machine gives the *set* of
// outcomes the architecture allows (the fresh walk of current memory, plus whatever surviving
// cached entries can produce); a conforming implementation shows one of them. The shape is
// that of smmuv3::Machine.
//
// Caches (core/history.h for the epoch rule; machine.cpp cites the sources at each rule). What
// may be cached, with the tags an invalidation selects it by:
//   context-cache entries (by source-id; legacy entries tagged with the context entry's DID);
//   PASID-cache entries (by source-id and PASID, tagged with the PASID entry's DID);
//   IOTLB entries: second-stage-only and pass-through ones tagged with the DID, first-stage and
//   nested ones with the DID and the PASID (and the first-stage G flag); paging-structure-cache
//   entries (non-leaf entries, either stage) with the same tags; combined nested entries
//   (the whole first-stage + second-stage translation). Only present, valid entries are
//   cached: nothing is cached from a walk that faulted before reaching them, and no
//   configuration entry that failed its checks.
// An IOTLB or paging-structure-cache entry a requester filled may be used by that requester
// whatever its context and PASID entries now say (QEMU looks the IOTLB up by source-id and
// PASID before the context entry, Qc:vtd_do_iommu_translate; VT-d's guidance to software asks
// for the old domain's IOTLB invalidation after a context or PASID entry changes), until an
// invalidation covering its tags completes. A configuration entry (fresh or cached) also
// allows a walk of current memory through it, using cached second-stage entries of its DID.
//
// Device TLB (ATS), with Features::dev_tlb, for a requester whose context entry allows
// translation requests (legacy TT = device-TLB, scalable DTE = 1): the device may use any
// translation the IOMMU could have returned to it at an earlier point, stale cached ones
// included, until a device-TLB invalidation covering it (type 3 for requests without PASID,
// type 8 for its PASID or all PASIDs; by source-id and dev_tlb_range()) has completed, if,
// from the point that invalidation executed on, the IOMMU could no longer return it. It
// executes once the IOTLB invalidations ahead of it in the queue have completed (type 8: the
// PASID-based ones too; VT-d 6.5.2.12), and what a fence (FN = 1) or an earlier submission's
// waits completed; nothing else ahead of it need have. Faults are not cached there.
//
// Model limits (README.md "Machine"): entries cached during an epoch come from that epoch's
// image alone, and from this requester's own translations (not another device's of the same
// domain); no page requests, interrupt remapping or caching mode (CAP.CM); a device-TLB
// entry may be used whatever the context entry now says (translated requests are not
// blocked); first-stage A/D updates are not written back to memory (they change no outcome
// here).
#pragma once

#include "core/history.h"
#include "core/hw.h"
#include "core/range.h"
#include "vtd/format.h"
#include "vtd/walk.h"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace iommuspec::vtd {

// Where the structures live (conformance/suites/vtd/README.md "Memory layout").
struct Layout {
  Range ram{0x100000, 0x0fffffff};
  uint64_t root_table = 0x100000; // RTADDR
  bool scalable = true;           // RTADDR.TTM: scalable-mode root table (else legacy)
  uint64_t iq = 0x400000;         // IQA (the machine takes descriptors from submit(), not here)
  unsigned iq_log2 = 8;           // 256 descriptors
  // Fault recording registers: QEMU has one (DMAR_FRCD_REG_NR = 1, CAP.NFR = 0,
  // hw/i386/intel_iommu_internal.h).
  unsigned fault_records = 1;
};

// What the implementation has (CAP_REG / ECAP_REG values the model consults). The defaults
// are QEMU's "x-scalable-mode=on,x-flts=on" unit with second stage, nesting and pass-through
// added: 3- and 4-level second stage, 2M/1G pages, MAMV 18 (Qc:vtd_cap_init).
struct Features {
  bool first_stage = true;    // ECAP.FLTS
  bool second_stage = true;   // ECAP.SLTS (legacy mode always translates with the second stage)
  bool nested = true;         // ECAP.NEST
  bool pass_through = true;   // ECAP.PT
  bool dev_tlb = false;       // ECAP.DT: legacy context TT = device-TLB allowed
  bool snoop_control = false; // ECAP.SC: SNP allowed in legacy second-stage leaves
  unsigned haw = 48;          // host address width
  unsigned mgaw = 48;         // CAP.MGAW + 1
  uint8_t sagaw = 0b0110;     // CAP.SAGAW: bit k = AW k (k+2 levels) supported
  uint8_t sllps = 0b11;       // CAP.SLLPS: 2M, 1G second-stage pages
  bool fl1gp = true;          // CAP.FL1GP
  bool fl5lp = false;         // CAP.FL5LP: 5-level first stage
  uint8_t mamv = 18;          // CAP.MAMV (QEMU VTD_MAMV)
  CapReg cap() const;         // the CAP_REG fields above
};

// What the device-TLB rule reads (machine.cpp "Device TLB"), kept only with
// Features::dev_tlb. Unlike the CacheHistory it forgets nothing: a translation a device TLB
// holds outlives the IOMMU cache entries it came from.
struct DevTlbHistory {
  struct Inv {
    QiDescriptor d;
    uint64_t seq = 0;           // when it was issued
    uint64_t done = UINT64_MAX; // the wait that completed it
    uint64_t batch = 0;         // when its submission began
    size_t point = SIZE_MAX;    // a device-TLB invalidation: the point it executes at
  };
  // A state of the IOMMU: after a write or a wait, or where a device-TLB invalidation
  // executes (`inv`).
  struct Point {
    size_t epoch = 0; // images[epoch] is the memory
    uint64_t seq = 0;
    size_t inv = SIZE_MAX;
  };
  std::vector<Memory> images;   // every epoch's image, the current one last
  std::vector<uint64_t> ends;   // ends[i]: the write that ended epoch i
  std::vector<Inv> invs;        // every invalidation descriptor, in queue order
  std::vector<uint64_t> fences; // waits with FN = 1
  std::vector<Point> points;
  uint64_t seq = 0;
  uint64_t batch = 0;
  size_t pending = 0; // invs[pending..] have not completed
};

// One member of an allowed set, and the clause that allows it.
struct Allowed {
  hw::DmaOutcome outcome;
  std::string_view clause;
};

class Machine {
public:
  explicit Machine(Layout layout = {}, Features features = {});

  const Layout& layout() const { return layout_; }
  const Features& features() const { return features_; }
  const Memory& memory() const { return hist_.memory(); }
  size_t stale_epochs() const { return hist_.stale().size(); }

  // A write step (ends an epoch). False when a word is outside RAM.
  bool write(std::span<const hw::Write> ws);
  // Descriptors written to the queue and IQT moved past them: 4 words per descriptor in
  // scalable mode (IQA.DW = 1, 256-bit), 2 in legacy mode; a trailing partial descriptor is
  // ignored. Consumed in order until an invalid one, where the queue stops (IQH at it,
  // FSTS.IQE): error "IQE", consumed = its index; the descriptors before it took effect.
  hw::QueueOutcome submit(std::span<const uint64_t> words);
  // After IQE: the failing descriptor becomes a wait descriptor (Linux dmar.c qi_check_fault
  // copies the batch's wait descriptor over it), IQE is cleared, and the rest of the stopped
  // submission is consumed; consumed counts that wait too (clause VTD.IQ.resume).
  hw::QueueOutcome resume();
  bool stopped() const { return !error_.empty(); }

  // The allowed outcomes of one access (deduplicated, fresh walk first).
  std::vector<Allowed> dma(const hw::DmaRequest& r) const;
  // After the target showed `observed`: an undrained fault goes to the fault recording
  // registers (or is lost, setting FSTS.PFO, when they are full).
  void after_dma(const hw::DmaRequest& r, const std::vector<Allowed>& allowed,
                 const hw::DmaOutcome& observed);
  // The fault recording registers, oldest first: for each record the outcomes it may be.
  struct Queued {
    std::vector<hw::DmaOutcome> may_be;
  };
  // Reads and clears the registers, and FSTS.PFO (`overflow`), as an implementation that
  // records every fault it can shows them.
  std::vector<Queued> drain_faults(bool& overflow);
  // The same, as every reading an implementation may show: "when F is set, hardware may
  // collapse additional faults from the same source-id" (FRCD_REG.F, Intel datasheets
  // reproducing the VT-d register; QEMU vtd_try_collapse_fault does), so a fault from a
  // requester with a record still pending may be missing, and a later one may then fit.
  struct FaultLog {
    std::vector<Queued> records;
    bool overflow = false;
    bool collapsed = false; // some fault was collapsed into an earlier record
  };
  std::vector<FaultLog> drain_fault_logs();
  size_t queued_faults() const;

private:
  // One reading of the registers: which faults of log_ are recorded, and FSTS.PFO.
  struct World {
    std::vector<size_t> recorded;
    bool pfo = false;
    bool collapsed = false; // some fault was collapsed into an earlier record
    friend bool operator==(const World&, const World&) = default;
  };
  Layout layout_;
  Features features_;
  CacheHistory<QiDescriptor> hist_;
  std::string error_;        // "IQE" while the queue is stopped, "" when running
  std::vector<QiDesc> rest_; // descriptors after the failing one
  std::vector<Queued> log_;  // every undrained fault, in order
  std::vector<uint16_t> log_sid_;
  std::vector<World> worlds_{World{}};
  DevTlbHistory dt_; // empty without Features::dev_tlb
  hw::QueueOutcome run(std::span<const QiDesc> descs);
  void wait_done(bool fence);
};

// Why a descriptor stops the queue ("IQE"), or "" when it is valid (machine.cpp).
std::string_view descriptor_error(const QiDesc& d, bool wide, const Features& f);

} // namespace iommuspec::vtd

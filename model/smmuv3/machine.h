// An SMMUv3 as a device access sees it: stream table, CDs and translation tables in memory,
// the command queue, the event queue, and the caches an implementation may keep. For each
// access the machine gives the *set* of outcomes the architecture allows (the fresh walk
// of current memory, plus whatever surviving cached entries can produce); a conforming
// implementation shows one of them.
//
// Caches (core/history.h for the epoch rule). What may be cached, each with its tags
// (SMMUv3 "Configuration and translation lookup" / "TLB tagging"; Arm ARM D8 "TLB
// maintenance"; cited again in machine.cpp at each rule):
//   STE (by StreamID), CD (by StreamID, SubstreamID): any reachable structure that was
//   read, valid or not (IHI 0070 3.21.3); likewise the level-1 descriptors of two-level
//   tables: an L1STD (by the StreamIDs of its level-1 index) and an L1CD (by StreamID and
//   the SubstreamIDs of its level-1 index), each also used with the *current* memory of
//   the level-2 table it points at (IHI 0070 5.1.1, 5.3.1, 4.3.1-4.3.4);
//   stage-1 TLB entries and stage-1 walk-cache entries (VMID, ASID or global, VA, granule);
//   stage-2 TLB and walk-cache entries (VMID, IPA, granule); combined stage-1+2 entries
//   (VMID, ASID, VA), also rebuilt later from a stage-2 entry still cached then; TLB
//   entries are filled only from valid descriptors with AF set (or AFFD).
// Model limits (see README.md "Machine"): entries cached during an epoch come from that
// epoch's image alone (except rebuilt combined entries: a stage-2 leaf still cached, with
// the current stage-1 tables or a stage-1 leaf still cached; and level-2 STEs/CDs read now
// through a cached L1STD/L1CD); TLB entries another stream inserted into the same address
// space (SMMUV3.CACHE.shared) are followed from earlier images through linear stream tables
// and the access's own SubstreamID only, and not as the source of rebuilt combined entries;
// two streams of one address space whose CDs differ now are UNPREDICTABLE (IHI 0070 5.4.1)
// and not modelled; an out-of-range L2Ptr that an implementation truncates
// (IHI 0070 3.4.3) is followed for the access itself, not for the TLB entries of earlier
// epochs; no stalls or PRI.
//
// ATC (Features::ats, IDR0.ATS): a device whose STE has EATS = 0b01 (full ATS) may hold in
// its ATC any translation the SMMU could have answered a Translation Request with at an
// earlier point (speculatively, stale cached entries included), and send the access as a
// Translated transaction, which bypasses the SMMU (the unit runs with CR0.ATSCHK = 0 and
// CR2.REC_CFG_ATS = 0: IHI 0070 5.2 EATS, 3.9.1.2). A CMD_ATC_INV removes such a
// translation once a later CMD_SYNC has completed, if from the point it was consumed on
// the SMMU could no longer answer with it (4.5.1: "after ensuring completion of the SMMU
// translation invalidate, issue a CMD_ATC_INV"). See machine.cpp "ATC".
#pragma once

#include "core/history.h"
#include "core/hw.h"
#include "core/range.h"
#include "smmuv3/format.h"
#include "smmuv3/walk.h"

#include <span>
#include <string_view>
#include <vector>

namespace iommuspec::smmuv3 {

// Where the structures live (conformance/suites/smmuv3/README.md "Memory layout").
struct Layout {
  Range ram{0x40000000, 0x4fffffff};
  // SMMU_STRTAB_BASE.ADDR and SMMU_STRTAB_BASE_CFG (IHI 0070 6.3.24, 6.3.25): LOG2SIZE,
  // FMT (0 linear, 1 two-level; 2 and 3 are Reserved and behave as 0) and SPLIT (6, 8 or
  // 10; other values behave as 6; IGNORED when linear).
  uint64_t strtab = 0x40000000;
  unsigned strtab_log2 = 8;
  uint8_t strtab_fmt = 0;
  uint8_t strtab_split = 6;
  uint64_t cmdq = 0x40200000;
  unsigned cmdq_log2 = 8;
  uint64_t evtq = 0x40210000;
  unsigned evtq_log2 = 5;
};

// What the implementation has (IDR0/IDR3 bits the model consults).
struct Features {
  bool stage1 = true;    // IDR0.S1P
  bool stage2 = true;    // IDR0.S2P
  bool nested = true;    // both, and STE.Config = 0b111 accepted
  bool range_inv = true; // IDR3.RIL
  bool hyp = false;      // IDR0.HYP: the EL2 TLBI commands are legal
  bool ats = false;      // IDR0.ATS: STE.EATS is not IGNORED, CMD_ATC_INV is legal
  bool st_level = true;  // IDR0.ST_LEVEL != 0: two-level stream tables (else FMT is RES0)
  bool cd2l = true;      // IDR0.CD2L: two-level CD tables (else STE.S1Fmt != 0 is ILLEGAL)
  // IDR1.SIDSIZE: the effective LOG2SIZE is MIN(LOG2SIZE, SIDSIZE) (IHI 0070 6.3.25).
  unsigned sid_bits = 32;
  // IDR1.SSIDSIZE (0..20): STE.S1CDMax above it is ILLEGAL; 0: no substreams (5.2 S1CDMax).
  unsigned ssid_bits = 20;
  // IDR5.OAS in bits (32..56, IHI 0070 6.3.6); 0: not given, so every size is possible.
  // Only the bypass check uses it (machine.cpp bypass_outcomes).
  unsigned oas_bits = 0;
};

// One member of an allowed set, and the clause that allows it.
struct Allowed {
  hw::DmaOutcome outcome;
  std::string_view clause;
};

// A consumed invalidation with the history's sequence numbers (core/history.h): when it was
// issued and, once a CMD_SYNC completed it, the last number given out before that SYNC.
struct Logged {
  Command cmd;
  uint64_t issued = 0, synced = 0;
};
// What the rebuilt-combined rule (machine.cpp) reads besides the cache history.
struct Timeline {
  std::vector<uint64_t> writes; // sequence numbers of the writes that changed memory
  std::vector<Logged> done;     // completed invalidations, oldest first
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
  // Commands written to the queue and PROD moved past them: consumed in order until one is
  // illegal, where the queue stops (CONS at it, GERROR.CMDQ_ERR).
  hw::QueueOutcome submit(std::span<const Cmd2> cmds);
  // After an error: the failing command becomes CMD_SYNC (Linux arm_smmu_cmdq_skip_err),
  // the error is acknowledged and consumption restarts at it: consumed counts that CMD_SYNC
  // and the rest of the stopped submission.
  hw::QueueOutcome resume();
  bool stopped() const { return !error_.empty(); }

  // The allowed outcomes of one access (deduplicated, fresh walk first).
  std::vector<Allowed> dma(const hw::DmaRequest& r) const;
  // After the target showed `observed`: an undrained event joins the event queue (or is
  // lost, and the overflow flag toggles, when the queue is full).
  void after_dma(const hw::DmaRequest& r, const std::vector<Allowed>& allowed,
                 const hw::DmaOutcome& observed);
  // Everything in the event queue, oldest first: for each record the outcomes it may be.
  struct Queued {
    std::vector<hw::DmaOutcome> may_be;
  };
  std::vector<Queued> drain_events(bool& overflow);
  size_t queued_events() const { return evtq_.size(); }

private:
  Layout layout_;
  Features features_;
  CacheHistory<Command> hist_;
  std::string error_;        // the stopped queue's CERROR, "" when running
  std::vector<Cmd2> rest_;   // commands after the failing one, and those submitted while stopped
  std::vector<Queued> evtq_; // undrained events
  bool overflow_ = false;    // EVTQ_PROD.OVFLG != EVTQ_CONS.OVACKFLG
  uint64_t seq_ = 0;         // the history's last sequence number
  std::vector<Logged> pending_;
  Timeline time_;
  // The ATC (Features::ats): the SMMU as it was at each point a Translation Request could
  // have been answered differently, and every CMD_ATC_INV with the point it was consumed at.
  struct AtcPoint {
    CacheHistory<Command> hist;
    Timeline time;
  };
  struct AtcInvalidation {
    CmdAtcInv cmd;
    size_t point = 0;
    bool done = false; // a later CMD_SYNC completed
  };
  std::vector<AtcPoint> atc_points_;
  std::vector<AtcInvalidation> atc_invs_;
  void atc_point();
  void atc(const hw::DmaRequest& r, std::vector<Allowed>& out) const;
  hw::QueueOutcome run(std::span<const Cmd2> cmds);
  void sync();
  void prune();
};

// The CERROR name of an illegal command, or "" (SMMUv3 "Command errors", machine.cpp).
std::string_view command_error(const Command& c, const Features& f);

} // namespace iommuspec::smmuv3

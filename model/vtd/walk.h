// Intel VT-d translation walk: second stage, first stage and nested (PGTT=nested), with no
// caches and no invalidation. Pure functions over a read-only Memory; the one side effect the
// hardware has (first-stage A/D updates) is returned as a list of writes for the caller to
// apply (apply_ad_updates).
//
// Citations use the abbreviations of format.h, plus:
//   Qc:NAME   QEMU hw/i386/intel_iommu.c, function NAME (pbo-linaro/qemu-ci @fc8b078e)
//   Q:NAME    QEMU hw/i386/intel_iommu_internal.h, macro NAME (same commit)
//   pasid.h:N, iommu.c:N, iommu.h:N, dmar.c:N   linux-source-6.12 drivers/iommu/intel
//
// Rules (each is cited again next to its code in walk.cpp):
// - Levels count from the root (levels) down to 1; an entry is a leaf at level 1 or when
//   PS (bit 7) is set (Qc:vtd_is_last_pte; iommu.c:847 stops at dma_pte_superpage).
// - Second stage: an entry is present when R or W is set (iommu.h dma_pte_present). The
//   effective permission is the AND of R and W over all levels (Qc:vtd_iova_to_sspte).
//   Execute has no second-stage position in either source: exec is checked as a read.
// - First stage: present when P (bit 0); writes need RW at every level, user requests need
//   U/S at every level (Qc:vtd_iova_to_fspte), exec needs XD clear at every level (x86).
// - Reserved bits: the per-level masks of Q:VTD_SPTE_* and Q:VTD_FPTE_* (see walk.cpp).
// - Memory that is not there (Memory::read64 == nullopt) is an access fault, as QEMU's
//   vtd_get_pte read failure is (see walk.cpp for the codes).
#pragma once

#include "core/memory.h"
#include "core/range.h"
#include "vtd/format.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace iommuspec::vtd {

// Second-stage walk parameters.
struct SsConfig {
  uint64_t slptptr = 0; // root table (physical), bits 63:12
  int levels = 4;       // 3, 4 or 5 = AW + 2 (iommu.h:895 agaw_to_level)
  unsigned width = 48;  // input width: min(AW width, MGAW) (Qc:vtd_iova_limit); an input
                        // at or above 2^width faults
  unsigned haw = 48;    // host address width: entry bits haw..51 are reserved
                        // (Q:VTD_SPTE_PAGE_L1_RSVD_MASK uses VTD_HAW_MASK)
  uint8_t sllps = 0b11; // CAP.SLLPS: bit k allows PS at level k+2 (format.h
                        // ss_large_page_allowed); PS where not allowed is reserved
  bool snp_ok = true;   // SNP (bit 11) allowed in leaves: scalable mode or ECAP.SC
                        // (Qc:vtd_init clears VTD_SPTE_SNP from the leaf masks)
  bool tm_ok = false;   // TM (bit 62) allowed in leaves (Q:VTD_SPTE_PAGE_L1_RSVD_MASK
                        // stale_tm argument); otherwise reserved
  bool scalable = true; // fault codes: scalable-mode (0x7x/0x8x) or legacy (0x0x)
  friend bool operator==(const SsConfig&, const SsConfig&) = default;
};

// First-stage walk parameters.
struct FsConfig {
  uint64_t fsptptr = 0; // root table, bits 63:12 (physical for walk_fs, a GPA when nested)
  int levels = 4;       // 4 or 5 from FLPM (iommu.c:816; format.h fs_levels)
  bool wpe = false;     // write-protect enable: supervisor writes honour RW (pasid.h:229-236)
  bool sre = false;     // supervisor requests enabled (pasid.h:220-227)
  bool ere = true;      // execute requests enabled. ERE has no position in either source
                        // (format.h PasidEntry), so the builders cannot read it: they set
                        // true and the caller may clear it
  unsigned haw = 48;    // entry bits haw..51 are reserved (Q:VTD_FPTE_PAGE_L1_RSVD_MASK)
  bool fl1gp = true;    // CAP.FL1GP: 1G pages allowed (format.h fs_large_page_allowed)
  friend bool operator==(const FsConfig&, const FsConfig&) = default;
};

// Builders. nullopt when the entry's AW/FLPM names no walk, or the levels are not in
// CAP.SAGAW (Qc:vtd_is_ss_level_supported). `haw` is the host address width.
std::optional<SsConfig> ss_config(const ContextEntry& ce, const CapReg& cap, unsigned haw);
std::optional<SsConfig> ss_config(const PasidEntry& pe, const CapReg& cap, unsigned haw);
std::optional<FsConfig> fs_config(const PasidEntry& pe, const CapReg& cap, unsigned haw);

struct Access {
  uint64_t addr = 0;
  bool write = false;
  bool exec = false; // instruction fetch (a read that also needs execute permission)
  bool priv = false; // supervisor request
  friend bool operator==(const Access&, const Access&) = default;
};

struct Fault {
  FaultReason reason = FaultReason::software;
  int stage = 0;           // 1 or 2: the stage whose structure or check failed
  bool on_fs_walk = false; // second-stage fault while translating a first-stage
                           // paging-structure GPA (nested only)
  int level = 0;           // level of the entry that failed; 0 for checks before the walk
  int fs_level = 0;        // nested with on_fs_walk: the first-stage level being fetched
  uint64_t addr = 0;       // the access's input address
  uint64_t gpa = 0;        // stage 2: the GPA given to the second stage
  friend bool operator==(const Fault&, const Fault&) = default;
};

// Permission facts gathered on the way down a walk: for each bit, the highest level (the
// first met) whose entry denies it; 0 when no entry does. Second stage: R clear (no_r), W clear
// (no_w). First stage: R/W clear (no_w), U/S clear (no_us), XD set (xd). A paging-structure
// cache entry holds them for the levels above it, a leaf (IOTLB) entry for all levels, so the
// fault an access meets, and the order between faults, is the one the full walk gives.
struct Denials {
  int no_r = 0, no_w = 0, no_us = 0, xd = 0;
  friend bool operator==(const Denials&, const Denials&) = default;
};

// Where a walk starts when a non-leaf (paging-structure cache) entry is used: the table that
// entry points at (a GPA for first-stage tables of a nested walk), its level, and the
// denials of the levels above.
struct WalkFrom {
  int level = 0;
  uint64_t table = 0;
  Denials den{};
  friend bool operator==(const WalkFrom&, const WalkFrom&) = default;
};

// A leaf a walk reached, present and with no reserved bit set: what an IOTLB entry may hold.
// Permissions are evaluated per access (ss_leaf_result / fs_leaf_result), so an entry filled
// by a read serves, or faults, a later write.
struct SsLeaf {
  int level = 1;
  uint64_t base = 0, size = 0; // the input (GPA) range the leaf maps
  uint64_t entry = 0;          // the leaf entry as read
  Denials den{};               // over every level, the leaf's included
  friend bool operator==(const SsLeaf&, const SsLeaf&) = default;
};
struct FsLeaf {
  int level = 1;
  uint64_t base = 0, size = 0;
  uint64_t entry = 0;
  Denials den{};
  // Nested: the leaf's D flag is clear and the second stage maps the leaf's table read-only,
  // so a write cannot set D (0x77); entry_gpa is that entry's GPA.
  bool d_blocked = false;
  uint64_t entry_gpa = 0;
  friend bool operator==(const FsLeaf&, const FsLeaf&) = default;
};

// A first-stage A/D update the hardware performs: write `value` at `pa`.
struct AdUpdate {
  uint64_t pa = 0;
  uint64_t value = 0;
  friend bool operator==(const AdUpdate&, const AdUpdate&) = default;
};

struct Walk {
  std::optional<Fault> fault;
  uint64_t pa = 0;                                // output address (valid when !fault)
  bool read = false, write = false, exec = false; // effective permissions of the page
  uint64_t page_size = 0;
  std::vector<uint64_t> entries_read; // PA of every entry fetched, in order
  std::vector<AdUpdate> ad_updates;   // in order; kept even when a later level faults
  // Filled by the resumable walks below (walk_ss_from, walk_fs_from) only: what the walk
  // passed through, as a cache would hold it (see "Building blocks for the machine").
  std::vector<WalkFrom> ss_tables, fs_tables;
  std::optional<SsLeaf> ss_leaf;
  std::optional<FsLeaf> fs_leaf;
  bool ok() const { return !fault; }
};

// Second stage alone: translate `gpa`; acc.write/acc.exec select the check.
Walk walk_ss(const Memory& mem, const SsConfig& ss, uint64_t gpa, const Access& acc);
// First stage alone: table addresses and the output are physical.
Walk walk_fs(const Memory& mem, const FsConfig& fs, const Access& acc);
// Nested: every first-stage table address and the first-stage output are GPAs, translated
// by the second stage.
Walk walk_nested(const Memory& mem, const FsConfig& fs, const SsConfig& ss, const Access& acc);

// Applies the A/D updates of a walk (returns false if a write was refused).
bool apply_ad_updates(Memory& mem, const Walk& w);

// ---------------------------------------------------------------------------------------
// Building blocks for the machine (machine.h), which combines them with its caches. They give
// the outcomes walk_ss / walk_fs / walk_nested give (machine_test.cpp and walk_test.cpp check
// the equivalence on arbitrary memory), and also report the table pointers and the leaf a
// cache could hold (Walk::ss_tables, fs_tables, ss_leaf, fs_leaf). To find the leaf they go on
// past a permission fault (which stays the result): a permission fault of one access does not
// stop another access from filling the entry. entries_read and ad_updates are therefore not
// those of the plain walks. No interrupt-range check: apply check_interrupt_range last.
// ---------------------------------------------------------------------------------------

// Second stage from the root, or from a cached table (`from`). Faults carry the codes of
// walk_ss for the configuration's mode.
Walk walk_ss_from(const Memory& mem, const SsConfig& ss, uint64_t gpa, const Access& acc,
                  const std::optional<WalkFrom>& from);
// An access through a second-stage leaf, fresh or cached: the width check, then the
// permission check of the mode (legacy: per level, in walk order; scalable: the AND).
Walk ss_leaf_result(const SsConfig& ss, const SsLeaf& leaf, uint64_t gpa, const Access& acc);

// Second-stage candidates for a GPA (a first-stage table address or the first-stage output)
// of a nested walk: the machine appends the fresh walk and what its caches allow.
using SsTranslate = std::function<void(uint64_t gpa, const Access& acc, std::vector<Walk>& out)>;
// First stage from the root or a cached table. With `ss`, table addresses are GPAs translated
// through *ss (one branch per candidate) and the output stays a GPA: combine it with the
// second-stage result for it (combine_nested). One Walk per candidate path is appended.
void walk_fs_from(const Memory& mem, const FsConfig& fs, const SsTranslate* ss, const Access& acc,
                  const std::optional<WalkFrom>& from, std::vector<Walk>& out);
// An access through a first-stage leaf, fresh or cached: the PASID-entry and canonical checks
// of walk_fs, then the permission faults in walk order.
Walk fs_leaf_result(const FsConfig& fs, const FsLeaf& leaf, const Access& acc);
// Nested: the first-stage result (output GPA) combined with the second-stage result for it
// (walk_nested's codes: beyond the width is 0x74; permissions are the AND of both stages).
Walk combine_nested(Walk fs, const Walk& ss);
// The interrupt-range check walk_ss / walk_fs / walk_nested end with (stage 1 for a first
// stage alone, 2 otherwise).
void check_interrupt_range(Walk& w, const Access& acc, int stage, bool scalable);

// ---------------------------------------------------------------------------------------
// Table builder for tests and scenarios.
// ---------------------------------------------------------------------------------------

enum class Stage : uint8_t { first = 1, second = 2 };

struct Perms {
  bool r = true;    // second stage R (first stage: every present page is readable)
  bool w = true;    // second stage W / first stage RW
  bool x = true;    // first stage: XD = !x (second stage: not representable)
  bool user = true; // first stage U/S
  bool snp = false; // second stage SNP
  friend bool operator==(const Perms&, const Perms&) = default;
};

// Allocates 4K table pages from `pool` (which must be backed memory) and writes entries
// through the format layer. Non-leaf entries are fully permissive, as Linux writes them
// (iommu.c:859-863: R|W, and U/S|A for first level). Leaves preset A, and D when writable,
// as Linux does for first level (iommu.c:1830-1834) unless preset_ad is false.
class PageTableBuilder {
public:
  PageTableBuilder(Memory& mem, Stage stage, int levels, Range pool, bool preset_ad = true);
  uint64_t root() const { return root_; }
  // Maps [addr, addr+size) to [pa, pa+size); size is 4K, 2M or 1G, addr and pa aligned.
  // False (and nothing written) when misaligned, when the range overlaps an existing
  // mapping, or when the pool is exhausted.
  bool map(uint64_t addr, uint64_t pa, uint64_t size, const Perms& perms);
  // Table pages allocated so far (each 4K).
  const std::vector<uint64_t>& table_pages() const { return pages_; }

private:
  std::optional<uint64_t> alloc();
  uint64_t table_entry(uint64_t next) const;
  uint64_t leaf_entry(uint64_t pa, int level, const Perms& perms) const;
  bool is_present(uint64_t w) const;

  Memory& mem_;
  Stage stage_;
  int levels_;
  Range pool_;
  bool preset_ad_;
  uint64_t next_;
  uint64_t root_ = 0;
  std::vector<uint64_t> pages_;
};

} // namespace iommuspec::vtd

// The ARM SMMUv3 translation walk: stage 1, stage 2 and nested (stage 1 whose table-walk
// addresses and output are IPAs translated by stage 2), over sparse physical memory. No
// caches, no invalidation, no hardware access/dirty-flag updates: a walk only reads memory.
//
// Sources (cited next to the code in walk.cpp; see README.md "Walk"):
//   [P]  linux-source-6.12 drivers/iommu/io-pgtable-arm.c, "P:<line>".
//   [H]  linux-source-6.12 arch/arm64/include/asm/pgtable-hwdef.h, "H:<line>".
//   [QC] QEMU hw/arm/smmu-common.c (qemu/qemu, 2024 nested series): smmu_ptw_64_s1,
//        smmu_ptw_64_s2, translate_table_addr_ipa, smmu_ptw, combine_tlb; by function name.
//   [QI] QEMU hw/arm/smmu-internal.h: is_permission_fault(_s2), get_start_level,
//        pgd_concat_idx, VMSA_IDXMSK.
//   [QV] QEMU hw/arm/smmuv3.c: decode_cd, decode_ste_s2_cfg, s2t0sz_valid,
//        s2_pgtable_config_valid.
// The bit layouts come from format.h, which cites its own sources.
#pragma once

#include "core/memory.h"
#include "core/range.h"
#include "smmuv3/format.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace iommuspec::smmuv3 {

// ---------------------------------------------------------------------------------------
// Configuration.

// Stage 1, from a CD (TTB0 only: TTB1/TBI select_tt is not modelled, see README).
struct S1Config {
  uint64_t ttb0 = 0;              // CD.TTB0 (an IPA when nested)
  uint8_t t0sz = 25;              // CD.T0SZ: input size 64 - T0SZ bits
  Granule granule = Granule::g4k; // CD.TG0
  unsigned oas_bits = 48;         // CD.IPS decoded (oas_bits); bounds every stage-1 output
  bool epd0 = false;              // CD.EPD0: walks through TTB0 disabled
  bool affd = false;              // CD.AFFD: AF=0 does not fault
  bool had = false;               // CD.HAD0: hierarchical attributes (APTable...) disabled
  uint16_t asid = 0;              // CD.ASID (carried, unused by the walk)
  friend bool operator==(const S1Config&, const S1Config&) = default;
};

// Stage 2, from an STE.
struct S2Config {
  uint64_t s2ttb = 0;             // STE.S2TTB
  uint8_t s2t0sz = 25;            // STE.S2T0SZ
  uint8_t s2sl0 = 1;              // STE.S2SL0 (start level, see s2_start_level)
  Granule granule = Granule::g4k; // STE.S2TG
  unsigned ps_bits = 48;          // STE.S2PS decoded (oas_bits)
  bool affd = false;              // STE.S2AFFD
  bool s2ptw = false;             // STE.S2PTW (carried; Device-memory check not modelled)
  uint16_t vmid = 0;              // STE.S2VMID (carried, unused by the walk)
  friend bool operator==(const S2Config&, const S2Config&) = default;
};

// Builders. nullopt where the source turns the configuration into C_BAD_CD / C_BAD_STE
// rather than a walk (see walk.cpp for each rule).
std::optional<S1Config> s1_config(const Cd& cd);
std::optional<S2Config> s2_config(const Ste& ste);
// The same rules on a config built directly; the walks check them first.
bool s1_config_valid(const S1Config& c);
bool s2_config_valid(const S2Config& c);
// Stage-2 start level from S2SL0 and S2TG ([QI] get_start_level; P:1083-1125 inverse).
int s2_start_level(const S2Config& c);
// Stage-1 start level from T0SZ and TG0 (H:26 ARM64_HW_PGTABLE_LEVELS; [QC]).
int s1_start_level(const S1Config& c);
// Effective output size of CD.IPS / STE.S2PS bits with a granule (48 unless 64K), and whether
// descriptors then use the 52-bit OA layout (format.h DescFormat::oa52).
unsigned eff_oas(unsigned bits, Granule g);
bool oa52(unsigned bits, Granule g);

// ---------------------------------------------------------------------------------------
// Walk inputs and results.

struct Access {
  uint64_t iova = 0;
  bool write = false;
  bool exec = false; // instruction fetch (ignored when write)
  bool priv = true;
};

// Permissions the walk grants an access of the same privilege.
struct Perms {
  bool read = true;
  bool write = false;
  bool exec = false;
  // Stage-1 only: AP[1], unprivileged (EL0) data access allowed (H:162 PTE_USER). The walk
  // reports it for stage 1; stage 2 has no privilege distinction for data and reports true.
  bool unpriv = true;
  friend bool operator==(const Perms&, const Perms&) = default;
};

enum class FaultClass : uint8_t {
  translation, // F_TRANSLATION
  addr_size,   // F_ADDR_SIZE
  access_flag, // F_ACCESS
  permission,  // F_PERMISSION
  walk_eabt,   // F_WALK_EABT
  bad_config,  // C_BAD_CD (stage 1) / C_BAD_STE (stage 2): the config fails *_config_valid
};
EventType event_type(FaultClass cls, int stage);

struct Fault {
  FaultClass cls = FaultClass::translation;
  int stage = 1;
  // Stage-2 fault raised while translating a stage-1 table-walk address (event CLASS=TT),
  // as opposed to the final IPA (CLASS=IN).
  bool s2_on_s1_walk = false;
  int level = 0; // level of the descriptor that faulted; 0 when no descriptor was involved
  uint64_t input_addr = 0; // the IOVA (for walk_s2: the IPA given)
  uint64_t ipa = 0;        // stage-2 faults: the IPA being translated when it faulted
  uint64_t fetch_pa = 0;   // walk_eabt: the descriptor address that had no memory
  friend bool operator==(const Fault&, const Fault&) = default;
};

// Hierarchical attributes gathered from stage-1 table descriptors (APTable, PXNTable,
// XNTable; H:217-219, H:146-147), cleared by CD.HAD0.
struct HierAttrs {
  bool no_write = false, no_unpriv = false, pxn = false, uxn = false;
  friend bool operator==(const HierAttrs&, const HierAttrs&) = default;
};

// A valid leaf a walk reached (AF set or AFFD): what a TLB entry may hold. Its permissions are
// evaluated per access (s1_entry_result / s2_entry_result), so an entry filled by a read
// serves, or permission-faults, a later write.
struct S1Entry {
  int level = 3;
  uint64_t va_base = 0, size = 0; // the input range the leaf maps
  S1Leaf leaf{};
  HierAttrs attrs{};
  friend bool operator==(const S1Entry&, const S1Entry&) = default;
};
struct S2Entry {
  int level = 3;
  uint64_t ipa_base = 0, size = 0;
  S2Leaf leaf{};
  friend bool operator==(const S2Entry&, const S2Entry&) = default;
};

// Where a walk starts: the root of the configuration, or the table a cached table
// descriptor points at (a walk-cache hit). `level` is the level of that table.
struct WalkFrom {
  int level = 0;
  uint64_t table = 0;
  HierAttrs attrs{};
  friend bool operator==(const WalkFrom&, const WalkFrom&) = default;
};

struct Walk {
  std::optional<Fault> fault;
  uint64_t pa = 0;        // output address (valid when !fault)
  Perms perms{};          // combined permissions (valid when !fault)
  uint64_t page_size = 0; // size of the translation (nested: the smaller of the two stages)
  // PAs of every descriptor fetched, in order (nested: stage-2 and stage-1 fetches).
  std::vector<uint64_t> descriptors_read;
  // The subset that were stage-1 descriptors (for walk_s2: empty).
  std::vector<uint64_t> s1_descriptors_read;
  // What the walk passed through, as a cache would hold it: the table descriptors used
  // (each as the WalkFrom it gives) and the leaf, when one was reached.
  std::vector<WalkFrom> s1_tables, s2_tables;
  std::optional<S1Entry> s1_entry;
  std::optional<S2Entry> s2_entry;
};

Walk walk_s1(const Memory& mem, const S1Config& c, const Access& a);
Walk walk_s2(const Memory& mem, const S2Config& c, uint64_t ipa, const Access& a);
Walk walk_nested(const Memory& mem, const S1Config& s1, const S2Config& s2, const Access& a);

// The building blocks the machine (machine.h) combines with its caches.
// Stage-2 results for an IPA: every candidate (fresh walk, cached entries).
using S2Translate = std::function<void(uint64_t ipa, const Access&, std::vector<Walk>& out)>;
// Stage 1 from the root or a cached table; with s2, table addresses are IPAs translated
// through *s2 (the output stays an IPA: the caller translates it). One Walk per candidate
// path is appended to out.
void walk_s1_from(const Memory& mem, const S1Config& c, const S2Translate* s2, const Access& a,
                  const std::optional<WalkFrom>& from, std::vector<Walk>& out);
Walk walk_s2_from(const Memory& mem, const S2Config& c, uint64_t ipa, const Access& a,
                  const std::optional<WalkFrom>& from);
// The outcome of an access through a leaf (fresh or cached): permission, then output size.
Walk s1_entry_result(const S1Config& c, const S1Entry& e, const Access& a);
Walk s2_entry_result(const S2Config& c, const S2Entry& e, uint64_t ipa, const Access& a);
// Nested: the stage-1 result (output IPA) combined with the stage-2 result for it.
Walk combine_nested(Walk s1, const Walk& s2);

// ---------------------------------------------------------------------------------------
// Table builder for tests and scenarios: allocates granule-sized tables (and a possibly
// concatenated stage-2 root) bump-wise from `pool`, writes descriptors through encode().

class PageTableBuilder {
public:
  // Stage 1 for an ia_bits-bit input (= 64 - T0SZ).
  static PageTableBuilder stage1(Memory& mem, Range pool, Granule g, unsigned ia_bits,
                                 bool oa52 = false);
  // Stage 2 matching a config (start level from S2SL0, concatenated root when needed).
  static PageTableBuilder stage2(Memory& mem, Range pool, const S2Config& c);

  uint64_t root() const { return root_; }
  int start_level() const { return start_level_; }
  // Maps [iova, iova+size) to [pa, pa+size) with one leaf: size must be the page size or a
  // block size allowed at its level, iova and pa aligned to it. false (and nothing new is
  // mapped, though tables may have been allocated) when the range overlaps an existing
  // leaf or table, is out of the input range, or the pool is exhausted. Stage 1 cannot deny
  // read: p.read is ignored there.
  bool map(uint64_t iova, uint64_t pa, uint64_t size, const Perms& p, bool af = true);
  // PA of the descriptor slot for iova at level, if the tables down to it exist. (With a
  // placement offset: the slot's address in the walk's address space.)
  std::optional<uint64_t> slot(uint64_t iova, int level) const;
  // Tables live at `pool` addresses in the walk's address space (an IPA for the stage-1
  // tables of a nested stream) but are stored at address + offset in `mem`.
  void set_placement_offset(uint64_t offset) { offset_ = offset; }
  uint64_t placement_offset() const { return offset_; }

private:
  PageTableBuilder(Memory& mem, Range pool, DescFormat f, unsigned ia_bits, int start_level);
  std::optional<uint64_t> alloc(uint64_t bytes);
  uint64_t index(uint64_t ia, int level) const;

  Memory* mem_;
  Range pool_;
  uint64_t next_;
  DescFormat fmt_;
  unsigned ia_bits_;
  int start_level_;
  uint64_t root_ = 0;
  bool ok_ = true;
  uint64_t offset_ = 0;
};

} // namespace iommuspec::smmuv3

// Intel VT-d in-memory structures, queued-invalidation descriptors, fault records and the
// discovery registers, as value types with bit-exact encoders and decoders. Nothing here
// walks tables or caches anything: this is the format layer only.
//
// Every field cites where its position comes from. Abbreviations:
//   iommu.h:N      linux-source-6.12 drivers/iommu/intel/iommu.h, line N
//   pasid.h:N      linux-source-6.12 drivers/iommu/intel/pasid.h
//   dmar.c:N       linux-source-6.12 drivers/iommu/intel/dmar.c
//   iommu.c:N      linux-source-6.12 drivers/iommu/intel/iommu.c
//   cap_audit.h:N  linux-source-6.12 drivers/iommu/intel/cap_audit.h
//   x86 pgtable:N  linux-source-6.12 arch/x86/include/asm/pgtable_types.h (the first stage
//                  walks CPU page tables: svm.c:139 hands mm->pgd to the PASID entry)
//   Q:NAME         QEMU hw/i386/intel_iommu_internal.h, macro NAME (upstream master as
//                  mirrored in pbo-linaro/qemu-ci @06ef3849; "old Q" = the qemu/qemu
//                  snapshot @8ffa52c2 in the search index, which predates first-stage support)
//   Qc:NAME        QEMU hw/i386/intel_iommu.c, function NAME
// Where the sources disagree, a "DISAGREE:" comment says how and which one the encoding
// follows. Bits no source names are not represented: decoders ignore them and encoders
// write them as zero; the k...Fields masks below list exactly the bits that are represented.
//
// Encoders truncate each field to its width (addresses: to their bit range), so
// decode(encode(x)) == x holds for values within the widths. Addresses are kept as byte
// addresses with their low bits (below the field) zero.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>

namespace iommuspec::vtd {

using Words2 = std::array<uint64_t, 2>; // 128-bit structure, [0] holds bits 63:0
using Words4 = std::array<uint64_t, 4>; // 256-bit structure
using Words8 = std::array<uint64_t, 8>; // 512-bit structure

// ---------------------------------------------------------------------------------------
// 1. Legacy mode: root and context entries
// ---------------------------------------------------------------------------------------

// Root entry, 128 bits (iommu.h:553-558: "0: Present, 1-11: Reserved, 12-63: Context Ptr,
// 64-127: Reserved").
struct RootEntry {
  bool present = false; // bit 0 (iommu.h:554; Q:VTD_ROOT_ENTRY_P)
  uint64_t ctp = 0;     // bits 63:12, context-table pointer (iommu.h:556; Q:VTD_ROOT_ENTRY_CTP)
  friend bool operator==(const RootEntry&, const RootEntry&) = default;
};
inline constexpr Words2 kRootEntryFields = {0xffff'ffff'ffff'f001ull, 0};
Words2 encode(const RootEntry& e);
RootEntry decode_root_entry(const Words2& w);

// Context-entry translation type, lo bits 3:2 (iommu.h:59-61; Q:VTD_CONTEXT_TT_*). 3 is not
// named by either source.
enum class TranslationType : uint8_t { multi_level = 0, dev_iotlb = 1, pass_through = 2 };

// Legacy context entry, 128 bits (iommu.h:564-574).
// QEMU checks lo bits 11:4 and hi bits 7, 63:24 as reserved (Q:VTD_CONTEXT_ENTRY_RSVD_LO,
// Q:VTD_CONTEXT_ENTRY_RSVD_HI).
struct ContextEntry {
  bool present = false;                              // lo bit 0 (iommu.h:566)
  bool fpd = false;                                  // lo bit 1, fault processing disable
                                                     // (iommu.h:567; Q:VTD_CONTEXT_ENTRY_FPD)
  TranslationType tt = TranslationType::multi_level; // lo bits 3:2 (iommu.h:568, :988-992)
  uint64_t slptptr = 0; // lo bits 63:12, second-stage table root (iommu.h:569;
                        // Q:VTD_CONTEXT_ENTRY_SLPTPTR)
  uint8_t aw = 0;       // hi bits 2:0, adjusted guest address width (iommu.h:571, :1002-1005;
                        // Q:VTD_CONTEXT_ENTRY_AW); levels = aw + 2 (iommu.h:895)
  uint8_t avail = 0;    // hi bits 6:3, available to software (iommu.h:572 "aval")
  uint16_t did = 0;     // hi bits 23:8, domain id (iommu.h:573, :1008-1011;
                        // Q:VTD_CONTEXT_ENTRY_DID)
  friend bool operator==(const ContextEntry&, const ContextEntry&) = default;
};
inline constexpr Words2 kContextEntryFields = {0xffff'ffff'ffff'f00full, 0x0000'0000'00ff'ff7full};
Words2 encode(const ContextEntry& e);
ContextEntry decode_context_entry(const Words2& w);

// ---------------------------------------------------------------------------------------
// 2. Scalable mode: root, context, PASID directory and PASID table entries
// ---------------------------------------------------------------------------------------

// Scalable-mode root entry, 128 bits: the lower half serves devfn 0x00-0x7f, the upper half
// devfn 0x80-0xff (iommu.c:506-512; iommu.c:78-96 root_entry_lctp/uctp).
struct SmRootEntry {
  bool lower_present = false; // bit 0 (iommu.c:80)
  uint64_t lctp = 0;          // bits 63:12 (iommu.c:83)
  bool upper_present = false; // bit 64 (iommu.c:92)
  uint64_t uctp = 0;          // bits 127:76 (iommu.c:95)
  friend bool operator==(const SmRootEntry&, const SmRootEntry&) = default;
};
inline constexpr Words2 kSmRootEntryFields = {0xffff'ffff'ffff'f001ull, 0xffff'ffff'ffff'f001ull};
Words2 encode(const SmRootEntry& e);
SmRootEntry decode_sm_root_entry(const Words2& w);

// Scalable-mode context entry, 256 bits; it takes two legacy-sized slots (iommu.c:512
// "devfn *= 2"; Q:VTD_CTX_ENTRY_SCALABLE_SIZE). Words [2] and [3] carry no field in either
// source. QEMU checks lo bits 8:5 and hi bits 63:21 as reserved
// (Q:VTD_SM_CONTEXT_ENTRY_RSVD_VAL0, Q:VTD_SM_CONTEXT_ENTRY_RSVD_VAL1).
// DISAGREE (gap): QEMU leaves hi bit 20 out of its reserved mask but names nothing there,
// and Linux names nothing there either; it is not represented.
struct SmContextEntry {
  bool present = false;       // bit 0 (iommu.h:959-962)
  bool fpd = false;           // bit 1 (iommu.h:983-986)
  bool dte = false;           // bit 2, device-TLB enable (iommu.h:1067-1070)
  bool paside = false;        // bit 3, PASID enable (iommu.h:62 CONTEXT_PASIDE; pasid.h:22)
  bool pre = false;           // bit 4, page request enable (iommu.h:1076-1079)
  uint8_t pdts = 0;           // bits 11:9, PASID directory size: 2^(pdts+7) entries
                              // (iommu.h:1222 context_pdts; pasid.h:23)
  uint64_t pasid_dir_ptr = 0; // bits 63:12 (iommu.c:789; pasid.c:775)
  uint32_t rid_pasid = 0;     // bits 83:64 (20 bits), PASID for requests without PASID
                              // (iommu.h:1058-1061; Q:VTD_SM_CONTEXT_ENTRY_RID2PASID_MASK)
  friend bool operator==(const SmContextEntry&, const SmContextEntry&) = default;
};
inline constexpr Words4 kSmContextEntryFields = {0xffff'ffff'ffff'fe1full, 0x0000'0000'000f'ffffull,
                                                 0, 0};
Words4 encode(const SmContextEntry& e);
SmContextEntry decode_sm_context_entry(const Words4& w);
// Number of PASID directory entries a context entry's PDTS selects (pasid.h:23).
uint32_t pasid_dir_entries(uint8_t pdts);

// PASID directory entry, 64 bits. A PASID selects directory entry pasid >> 6 and table entry
// pasid & 0x3f (pasid.h:14,18; Q:VTD_PASID_DIR_INDEX, Q:VTD_PASID_TABLE_INDEX).
struct PasidDirEntry {
  bool present = false;     // bit 0 (pasid.h:15,62-65)
  bool fpd = false;         // bit 1 (Q:VTD_PASID_DIR_FPD)
  uint64_t pasid_table = 0; // bits 63:12, PASID table pointer (pasid.h:17,74;
                            // Q:VTD_PASID_TABLE_BASE_ADDR_MASK)
  friend bool operator==(const PasidDirEntry&, const PasidDirEntry&) = default;
};
inline constexpr uint64_t kPasidDirEntryFields = 0xffff'ffff'ffff'f003ull;
uint64_t encode(const PasidDirEntry& e);
PasidDirEntry decode_pasid_dir_entry(uint64_t w);
// pasid.h:18 PASID_PDE_SHIFT
inline constexpr uint32_t pasid_dir_index(uint32_t pasid) {
  return pasid >> 6;
}
// pasid.h:14 PASID_PTE_MASK
inline constexpr uint32_t pasid_table_index(uint32_t pasid) {
  return pasid & 0x3f;
}

// PASID-granular translation type, PASID entry bits 8:6 (pasid.h:49-52;
// Q:VTD_SM_PASID_ENTRY_FLT/SLT/NESTED/PT). 0, 5, 6, 7 are not named.
enum class Pgtt : uint8_t { first_stage = 1, second_stage = 2, nested = 3, pass_through = 4 };

// Scalable-mode PASID table entry, 512 bits. The spec's newer names FSPTPTR/SSPTPTR are the
// sources' FLPTPTR/SLPTPTR. Not represented because neither source gives their position:
// SLEE, ERE (ERE appears only as the text of fault reason 0x5c, dmar.c:1793), and the
// memory-type fields (EMT, PAT, CD, ...). Words [3]..[7] carry no field in either source.
struct PasidEntry {
  // word 0
  bool present = false; // bit 0 (pasid.h:242-246; Q:VTD_PASID_ENTRY_P)
  bool fpd = false;     // bit 1 (pasid.h:16,185-188; Q:VTD_PASID_ENTRY_FPD)
  uint8_t aw = 0;       // bits 4:2, second-stage AGAW (pasid.h:161-169;
                        // Q:VTD_SM_PASID_ENTRY_AW)
  Pgtt pgtt = Pgtt{0};  // bits 8:6 (pasid.h:171-179; Q:VTD_SM_PASID_ENTRY_PGTT)
  bool slade = false;   // bit 9, second-stage A/D enable (pasid.h:190-198)
  uint64_t slptptr = 0; // bits 63:12 (pasid.h:151-159; Q:VTD_SM_PASID_ENTRY_SLPTPTR)
  // word 1
  uint16_t did = 0;   // bits 79:64 (pasid.h:132-140; Q:VTD_SM_PASID_ENTRY_DID)
  bool pwsnp = false; // bit 87, page-walk snoop (pasid.h:261-268; Linux calls the
                      // setter pasid_set_page_snoop)
  bool pgsnp = false; // bit 88, page snoop (pasid.h:270-278; set when
                      // PASID_FLAG_PAGE_SNOOP, pasid.h:33, pasid.c:358-359)
  // word 2
  bool sre = false;     // bit 128, supervisor request enable (pasid.h:220-227)
  uint8_t flpm = 0;     // bits 131:130, first-stage paging mode: 0 = 4-level,
                        // 1 = 5-level (pasid.h:290-298; iommu.c:816;
                        // Q:VTD_SM_PASID_ENTRY_FLPM)
  bool wpe = false;     // bit 132, write protect enable (pasid.h:229-236)
  bool eafe = false;    // bit 135, extended access flag enable (pasid.h:300-307)
  uint64_t flptptr = 0; // bits 191:140 (pasid.h:280-288; iommu.c:817;
                        // Q:VTD_SM_PASID_ENTRY_FLPTPTR)
  friend bool operator==(const PasidEntry&, const PasidEntry&) = default;
};
inline constexpr Words8 kPasidEntryFields = {
    0xffff'ffff'ffff'f3dfull, 0x0000'0000'0180'ffffull, 0xffff'ffff'ffff'f09dull, 0, 0, 0, 0, 0};
Words8 encode(const PasidEntry& e);
PasidEntry decode_pasid_entry(const Words8& w);

// ---------------------------------------------------------------------------------------
// 3. Page-table entries and walk helpers
// ---------------------------------------------------------------------------------------

// Second-stage paging entry, 64 bits, any level. Address bits 51:12 (Q:VTD_PT_BASE_ADDR_MASK
// with the host address width; x86 physical addresses stop at bit 51).
// DISAGREE: Linux masks the address with VTD_PAGE_MASK, bits 63:12 (iommu.h:844-852), QEMU with
// the host address width; this model keeps 51:12 because bit 62 is TM.
// DISAGREE: the dma_pte comment (iommu.h:826-834) calls bits 6:2 reserved and 10:8
// "available", while iommu.h:53-54 puts the dirty flag at bit 9; QEMU reserves none of 10:2
// (Q:VTD_SPTE_PAGE_L1_RSVD_MASK). The execute, memory-type (EMT, IPAT) and accessed flags
// have no position in either source and are not represented.
struct SsPte {
  bool r = false;    // bit 0 (iommu.h:43; Q:VTD_SL_R)
  bool w = false;    // bit 1 (iommu.h:44; Q:VTD_SL_W)
  bool ps = false;   // bit 7, page size: leaf at level 2/3 (iommu.h:45; Q:VTD_PT_PAGE_SIZE_MASK)
  bool d = false;    // bit 9, dirty (iommu.h:53-54)
  bool snp = false;  // bit 11, snoop (iommu.h:46; Q:VTD_SPTE_SNP)
  bool tm = false;   // bit 62, TM (Q:VTD_SL_TM; QEMU's reserved masks exempt it under a
                     // switch, Q:VTD_SPTE_PAGE_L1_RSVD_MASK)
  uint64_t addr = 0; // bits 51:12
  friend bool operator==(const SsPte&, const SsPte&) = default;
};
inline constexpr uint64_t kSsPteFields = 0x400f'ffff'ffff'fa83ull;
uint64_t encode(const SsPte& e);
SsPte decode_ss_pte(uint64_t w);
// Present as far as Linux is concerned: R or W set (iommu.h:854-857).
inline constexpr bool ss_pte_present(const SsPte& e) {
  return e.r || e.w;
}

// First-stage paging entry, 64 bits, any level: the IA-32e format. Bit 7 is PS above level 1
// and PAT in a level-1 entry; in a 2M/1G leaf bit 12 is PAT (x86 pgtable:17-18,23), so there
// `addr` bit 12 is that PAT bit and QEMU reserves the bits between it and the page
// (Q:VTD_FPTE_LPAGE_L2_RSVD_MASK, Q:VTD_FPTE_LPAGE_L3_RSVD_MASK).
// DISAGREE: QEMU treats bits 63:52 as ignored (Q:VTD_FS_UPPER_IGNORED); the x86 format puts
// XD at bit 63 (x86 pgtable:30). The encoding follows x86.
struct FsPte {
  bool p = false;    // bit 0 (iommu.h:48; x86 pgtable:10; Q:VTD_FL_P)
  bool rw = false;   // bit 1 (x86 pgtable:11; Q:VTD_FL_RW)
  bool us = false;   // bit 2 (iommu.h:49; x86 pgtable:12; Q:VTD_FL_US)
  bool pwt = false;  // bit 3 (x86 pgtable:13)
  bool pcd = false;  // bit 4 (x86 pgtable:14)
  bool a = false;    // bit 5 (iommu.h:50; x86 pgtable:15; Q:VTD_FL_A)
  bool d = false;    // bit 6 (iommu.h:51; x86 pgtable:16; Q:VTD_FL_D)
  bool ps = false;   // bit 7 (x86 pgtable:17-18; Q:VTD_PT_PAGE_SIZE_MASK)
  bool g = false;    // bit 8 (x86 pgtable:19)
  bool xd = false;   // bit 63 (x86 pgtable:30)
  uint64_t addr = 0; // bits 51:12
  friend bool operator==(const FsPte&, const FsPte&) = default;
};
inline constexpr uint64_t kFsPteFields = 0x800f'ffff'ffff'f1ffull;
uint64_t encode(const FsPte& e);
FsPte decode_fs_pte(uint64_t w);

// Levels count from 1 (the 4K table) up; each level resolves 9 address bits above bit 12
// (iommu.h:910-918 level_to_offset_bits, pfn_level_offset; Q:VTD_LEVEL_BITS).
inline constexpr unsigned level_shift(unsigned level) {
  return 12 + 9 * (level - 1);
}
inline constexpr unsigned pt_index(uint64_t iova, unsigned level) {
  return unsigned((iova >> level_shift(level)) & 0x1ff);
}
inline constexpr uint64_t level_page_size(unsigned level) {
  return 1ull << level_shift(level);
}
// AW (context entry, PASID entry) to levels and input width (iommu.h:895-903).
inline constexpr unsigned aw_levels(uint8_t aw) {
  return aw + 2u;
}
inline constexpr unsigned aw_width(uint8_t aw) {
  return 30u + 9u * aw;
}
// First-stage levels from FLPM: 0 -> 4, 1 -> 5 (iommu.c:816); 2, 3 name nothing.
std::optional<unsigned> fs_levels(uint8_t flpm);

struct CapReg;
// May a second-stage entry at `level` map a page (PS=1)? Bit k of SLLPS allows pages of
// 2^(21+9k) bytes, i.e. level k+2 (iommu.h:174-176 cap_super_offset; iommu.c:3500;
// Q:VTD_CAP_SLLPS sets bits 0 and 1 only, and Q:VTD_SPTE_PAGE_L4_RSVD_MASK reserves PS at
// level 4).
bool ss_large_page_allowed(const CapReg& cap, unsigned level);
// First stage: 2M always, 1G when FL1GP (iommu.c:408-410, :3497-3498); never at level 4
// or above (Q:VTD_FPTE_PAGE_L4_RSVD_MASK).
bool fs_large_page_allowed(const CapReg& cap, unsigned level);

// ---------------------------------------------------------------------------------------
// 4. Queued-invalidation descriptors
// ---------------------------------------------------------------------------------------

// Descriptor type, bits 3:0 plus bits 11:9 as type[6:4] (iommu.h:387-396; Q:VTD_INV_DESC_TYPE,
// Q:VTD_INV_DESC_*). Linux reads only bits 3:0 (dmar.c:1267); the old QEMU snapshot treats
// bits 11:9 as reserved, newer QEMU as the high type bits.
enum class QiType : uint8_t {
  context_cache = 0x1,   // QI_CC_TYPE
  iotlb = 0x2,           // QI_IOTLB_TYPE
  dev_tlb = 0x3,         // QI_DIOTLB_TYPE
  iec = 0x4,             // QI_IEC_TYPE, interrupt entry cache
  wait = 0x5,            // QI_IWD_TYPE
  pasid_iotlb = 0x6,     // QI_EIOTLB_TYPE (Q:VTD_INV_DESC_PIOTLB)
  pasid_cache = 0x7,     // QI_PC_TYPE
  pasid_dev_tlb = 0x8,   // QI_DEIOTLB_TYPE (Q:VTD_INV_DESC_DEV_PIOTLB)
  page_group_resp = 0x9, // QI_PGRP_RESP_TYPE (not modelled here)
  page_stream_resp = 0xa // QI_PSTRM_RESP_TYPE (not modelled here)
};
// The 7-bit type of a descriptor.
uint8_t qi_type(uint64_t qw0);

// Every descriptor is handled as 256 bits; the 128-bit form is words [0] and [1]. In a queue
// with IQA.DW=1 the descriptors modelled here leave words [2], [3] zero (dmar.c:1442,
// iommu.h:1120-1121).
using QiDesc = Words4;
enum class QiWidth : uint8_t { d128 = 0, d256 = 1 }; // IQA.DW (dmar.c:1663-1667; Q:VTD_IQA_DW_MASK)
inline constexpr Words2 to_128(const QiDesc& d) {
  return {d[0], d[1]};
}
inline constexpr QiDesc from_128(const Words2& d) {
  return {d[0], d[1], 0, 0};
}

// Context-cache invalidation granularity, qw0 bits 5:4 (iommu.h:418 QI_CC_GRAN applied to
// DMA_CCMD_*_INVL, iommu.h:303-305; Q:VTD_INV_DESC_CC_GLOBAL/DOMAIN/DEVICE). 0 is unnamed.
enum class CcGranularity : uint8_t { global = 1, domain = 2, device = 3 };
struct ContextCacheInv {
  CcGranularity g = CcGranularity::global; // qw0 bits 5:4
  uint16_t did = 0;                        // qw0 bits 31:16 (iommu.h:417; Q:VTD_INV_DESC_CC_DID)
  uint16_t sid = 0;                        // qw0 bits 47:32 (iommu.h:416; Q:VTD_INV_DESC_CC_SID)
  uint8_t fm = 0; // qw0 bits 49:48, function mask (iommu.h:415; Q:VTD_INV_DESC_CC_FM)
  friend bool operator==(const ContextCacheInv&, const ContextCacheInv&) = default;
};
// QEMU reserves everything else (Q:VTD_INV_DESC_CC_RSVD, qw1 unread).
inline constexpr QiDesc kContextCacheInvFields = {0x0003'ffff'ffff'0e3full, 0, 0, 0};
QiDesc encode(const ContextCacheInv& d);
std::optional<ContextCacheInv> decode_context_cache_inv(const QiDesc& d);

// IOTLB invalidation granularity, qw0 bits 5:4: QI_IOTLB_GRAN shifts DMA_TLB_*_FLUSH
// (bits 61:60 of IOTLB_REG) down to bit 4 (iommu.h:248-250, :410; Q:VTD_INV_DESC_IOTLB_*).
enum class IotlbGranularity : uint8_t { global = 1, domain = 2, page = 3 };
struct IotlbInv {
  IotlbGranularity g = IotlbGranularity::global; // qw0 bits 5:4
  bool dw = false;                               // qw0 bit 6, drain writes (iommu.h:409)
  bool dr = false;                               // qw0 bit 7, drain reads (iommu.h:408)
  uint16_t did = 0;  // qw0 bits 31:16 (iommu.h:407; Q:VTD_INV_DESC_IOTLB_DID)
  uint8_t am = 0;    // qw1 bits 5:0, address mask (iommu.h:413; Q:VTD_INV_DESC_IOTLB_AM)
  bool ih = false;   // qw1 bit 6, invalidation hint (iommu.h:412)
  uint64_t addr = 0; // qw1 bits 63:12 (iommu.h:411; Q:VTD_INV_DESC_IOTLB_ADDR)
  friend bool operator==(const IotlbInv&, const IotlbInv&) = default;
};
// Q:VTD_INV_DESC_IOTLB_RSVD_LO / _RSVD_HI agree with these masks.
inline constexpr QiDesc kIotlbInvFields = {0x0000'0000'ffff'0effull, 0xffff'ffff'ffff'f07full, 0,
                                           0};
QiDesc encode(const IotlbInv& d);
std::optional<IotlbInv> decode_iotlb_inv(const QiDesc& d);

// Device-TLB invalidation (type 3).
// DISAGREE: Linux puts PFSID[3:0] at qw0 bits 15:12 and PFSID[15:4] at bits 63:52
// (iommu.h:423-424); QEMU reserves bits 15:12 and 63:48 (Q:VTD_INV_DESC_DEVICE_IOTLB_RSVD_LO).
// The encoding follows Linux.
struct DevTlbInv {
  uint16_t pfsid = 0; // physical-function source id, split as above
  uint8_t mip = 0;    // qw0 bits 20:16, max invalidations pending (iommu.h:421 "qdep")
  uint16_t sid = 0;   // qw0 bits 47:32 (iommu.h:420; Q:VTD_INV_DESC_DEVICE_IOTLB_SID)
  bool s = false;     // qw1 bit 0, size: the range is coded in addr (iommu.h:425;
                      // Q:VTD_INV_DESC_DEVICE_IOTLB_SIZE)
  uint64_t addr = 0;  // qw1 bits 63:12 (iommu.h:422; Q:VTD_INV_DESC_DEVICE_IOTLB_ADDR)
  friend bool operator==(const DevTlbInv&, const DevTlbInv&) = default;
};
inline constexpr QiDesc kDevTlbInvFields = {0xfff0'ffff'001f'fe0full, 0xffff'ffff'ffff'f001ull, 0,
                                            0};
QiDesc encode(const DevTlbInv& d);
std::optional<DevTlbInv> decode_dev_tlb_inv(const QiDesc& d);

// Interrupt-entry-cache invalidation (type 4), included for completeness of the type space.
struct IecInv {
  bool selective = false; // qw0 bit 4, index-selective (iommu.h:398; VTDInvDescIEC.granularity)
  uint8_t im = 0;         // qw0 bits 31:27, index mask (iommu.h:400)
  uint16_t iidx = 0;      // qw0 bits 47:32, interrupt index (iommu.h:399)
  friend bool operator==(const IecInv&, const IecInv&) = default;
};
// Q:VTD_INV_DESC_IEC_RSVD agrees.
inline constexpr QiDesc kIecInvFields = {0x0000'ffff'f800'0e1full, 0, 0, 0};
QiDesc encode(const IecInv& d);
std::optional<IecInv> decode_iec_inv(const QiDesc& d);

// Invalidation wait (type 5).
// DISAGREE: Linux sets PD (page-request drain) at qw0 bit 7 (iommu.h:405, dmar.c:1440);
// QEMU reserves bit 7 (Q:VTD_INV_DESC_WAIT_RSVD_LO). The encoding follows Linux.
struct InvWait {
  bool if_ = false;         // qw0 bit 4, interrupt flag (Q:VTD_INV_DESC_WAIT_IF)
  bool sw = false;          // qw0 bit 5, status write (iommu.h:403; Q:VTD_INV_DESC_WAIT_SW)
  bool fn = false;          // qw0 bit 6, fence (iommu.h:404; Q:VTD_INV_DESC_WAIT_FN)
  bool pd = false;          // qw0 bit 7, page-request drain (iommu.h:405)
  uint32_t status_data = 0; // qw0 bits 63:32 (iommu.h:402; Q:VTD_INV_DESC_WAIT_DATA_SHIFT)
  uint64_t status_addr = 0; // qw1 bits 63:2, dword aligned (Q:VTD_INV_DESC_WAIT_RSVD_HI)
  friend bool operator==(const InvWait&, const InvWait&) = default;
};
inline constexpr QiDesc kInvWaitFields = {0xffff'ffff'0000'0effull, 0xffff'ffff'ffff'fffcull, 0, 0};
QiDesc encode(const InvWait& d);
std::optional<InvWait> decode_inv_wait(const QiDesc& d);

// PASID-cache invalidation granularity, qw0 bits 5:4 (iommu.h:430-435). 2 is unnamed.
enum class PasidCacheGranularity : uint8_t { domain = 0, pasid = 1, global = 3 };
struct PasidCacheInv {
  PasidCacheGranularity g = PasidCacheGranularity::domain; // qw0 bits 5:4 (iommu.h:430)
  uint16_t did = 0;                                        // qw0 bits 31:16 (iommu.h:429)
  uint32_t pasid = 0;                                      // qw0 bits 51:32 (iommu.h:428)
  friend bool operator==(const PasidCacheInv&, const PasidCacheInv&) = default;
};
inline constexpr QiDesc kPasidCacheInvFields = {0x000f'ffff'ffff'0e3full, 0, 0, 0};
QiDesc encode(const PasidCacheInv& d);
std::optional<PasidCacheInv> decode_pasid_cache_inv(const QiDesc& d);

// PASID-based IOTLB invalidation granularity, qw0 bits 5:4 (iommu.h:472-473 QI_GRAN_NONG_PASID,
// QI_GRAN_PSI_PASID; Q:VTD_INV_DESC_PIOTLB_ALL_IN_PASID, _PSI_IN_PASID). 0 and 1 are unnamed.
enum class PasidIotlbGranularity : uint8_t { all_in_pasid = 2, page_in_pasid = 3 };
struct PasidIotlbInv {
  PasidIotlbGranularity g = PasidIotlbGranularity::all_in_pasid; // qw0 bits 5:4 (iommu.h:442)
  uint16_t did = 0;   // qw0 bits 31:16 (iommu.h:441; Q:VTD_INV_DESC_PIOTLB_DID)
  uint32_t pasid = 0; // qw0 bits 51:32 (iommu.h:440; Q:VTD_INV_DESC_PIOTLB_PASID)
  uint8_t am = 0;     // qw1 bits 5:0 (iommu.h:439; Q:VTD_INV_DESC_PIOTLB_AM)
  bool ih = false;    // qw1 bit 6 (iommu.h:438; Q:VTD_INV_DESC_PIOTLB_IH)
  uint64_t addr = 0;  // qw1 bits 63:12 (iommu.h:437; Q:VTD_INV_DESC_PIOTLB_ADDR)
  friend bool operator==(const PasidIotlbInv&, const PasidIotlbInv&) = default;
};
// Q:VTD_INV_DESC_PIOTLB_RSVD_VAL0 / _VAL1 agree.
inline constexpr QiDesc kPasidIotlbInvFields = {0x000f'ffff'ffff'0e3full, 0xffff'ffff'ffff'f07full,
                                                0, 0};
QiDesc encode(const PasidIotlbInv& d);
std::optional<PasidIotlbInv> decode_pasid_iotlb_inv(const QiDesc& d);

// PASID-based device-TLB invalidation (type 8).
// DISAGREE: as for DevTlbInv, Linux places PFSID in qw0 bits 15:12 and 63:52
// (iommu.h:453-454, :1175-1177) where QEMU reserves them
// (Q:VTD_INV_DESC_PASID_DEVICE_IOTLB_RSVD_VAL0). The encoding follows Linux.
struct PasidDevTlbInv {
  uint8_t mip = 0;    // qw0 bits 8:4, max invalidations pending (iommu.h:452 "qdep")
  uint16_t pfsid = 0; // qw0 bits 15:12 and 63:52 (iommu.h:453-454)
  uint16_t sid = 0;   // qw0 bits 31:16 (iommu.h:451; Q:VTD_INV_DESC_PASID_DEVICE_IOTLB_SID)
  uint32_t pasid = 0; // qw0 bits 51:32 (iommu.h:450; Q:VTD_INV_DESC_PASID_DEVICE_IOTLB_PASID)
  bool g = false;     // qw1 bit 0, all PASIDs (iommu.h:445-446 QI_DEV_IOTLB_GRAN_*;
                      // Q:VTD_INV_DESC_PASID_DEVICE_IOTLB_GLOBAL)
  bool s = false;     // qw1 bit 11, size (iommu.h:449; Q:VTD_INV_DESC_PASID_DEVICE_IOTLB_SIZE)
  uint64_t addr = 0;  // qw1 bits 63:12 (iommu.h:448; Q:VTD_INV_DESC_PASID_DEVICE_IOTLB_ADDR)
  friend bool operator==(const PasidDevTlbInv&, const PasidDevTlbInv&) = default;
};
inline constexpr QiDesc kPasidDevTlbInvFields = {0xffff'ffff'ffff'ffffull, 0xffff'ffff'ffff'f801ull,
                                                 0, 0};
QiDesc encode(const PasidDevTlbInv& d);
std::optional<PasidDevTlbInv> decode_pasid_dev_tlb_inv(const QiDesc& d);

// The range a device-TLB invalidation covers. With S=0 one 4K page at addr; with S=1 the
// lowest clear address bit at or above 12 sets the size: bit 12 clear = 8K, bit 13 = 16K, ...
// (iommu.h:1189-1193, :1206-1218). All of 63:12 set covers everything.
struct ByteRange {
  uint64_t start = 0;
  uint64_t last = 0; // inclusive
  friend bool operator==(const ByteRange&, const ByteRange&) = default;
};
ByteRange dev_tlb_range(uint64_t addr, bool s);
// The qw1 address bits Linux writes for 2^size_order pages at `addr` (iommu.h:1204-1218);
// S is implied by size_order != 0.
uint64_t dev_tlb_addr_bits(uint64_t addr, unsigned size_order);

using QiDescriptor = std::variant<ContextCacheInv, IotlbInv, DevTlbInv, IecInv, InvWait,
                                  PasidCacheInv, PasidIotlbInv, PasidDevTlbInv>;
QiDesc encode(const QiDescriptor& d);
// Dispatches on the type; nullopt for types not modelled.
std::optional<QiDescriptor> decode_qi_descriptor(const QiDesc& d);

// ---------------------------------------------------------------------------------------
// 5. Fault recording and registers
// ---------------------------------------------------------------------------------------

// Fault reasons, with the meaning the sources give (dmar.c:1748-1833 strings indexed from 0,
// 0x30 and 0x20; Q:VTDFaultReason).
enum class FaultReason : uint8_t {
  // legacy DMA remapping (dmar.c:1748-1764)
  software = 0x00, // "Software"; DISAGREE (wording): QEMU "Reserved for Advanced Fault logging"
  root_not_present = 0x01,      // present bit in root entry is clear
  context_not_present = 0x02,   // present bit in context entry is clear
  context_invalid = 0x03,       // invalid context entry
  beyond_mgaw = 0x04,           // access beyond MGAW
  no_write = 0x05,              // PTE write access is not set
  no_read = 0x06,               // PTE read access is not set
  next_table_invalid = 0x07,    // next page table ptr is invalid
  root_table_invalid = 0x08,    // root table address invalid
  context_table_invalid = 0x09, // context table ptr is invalid
  root_reserved = 0x0a,         // non-zero reserved fields in root entry
  context_reserved = 0x0b,      // non-zero reserved fields in context entry
  pte_reserved = 0x0c,          // non-zero reserved fields in PTE
  context_tt_blocked = 0x0d,    // translation type blocks the request (Q:VTD_FR_CONTEXT_ENTRY_TT)
  interrupt_addr = 0x0e,        // output address in the interrupt range; QEMU only
                                // (Q:VTD_FR_INTERRUPT_ADDR), Linux's table ends at 0x0d
  // interrupt remapping (dmar.c:1824-1832; Q:VTD_FR_IR_*)
  ir_request_reserved = 0x20,  // reserved fields in the remapped request
  ir_index_over = 0x21,        // index exceeds the IRT size
  ir_entry_not_present = 0x22, // IRTE present bit clear
  ir_root_invalid = 0x23,      // IRTA table access error
  ir_irte_reserved = 0x24,     // reserved fields in the IRTE
  ir_compat_blocked = 0x25,    // compatibility-format interrupt blocked
  ir_sid_error = 0x26,         // source-id verification failure
  // scalable mode (dmar.c:1766-1822)
  sm_root_table_invalid = 0x30,      // invalid root table address
  sm_ttm0_pasid = 0x31,              // TTM 0 for request with PASID
  sm_ttm0_page_group = 0x32,         // TTM 0 for page group request
  sm_root_access = 0x38,             // error accessing root entry
  sm_root_not_present = 0x39,        // present bit in root entry clear
  sm_root_reserved = 0x3a,           // reserved field set in root entry
  sm_context_access = 0x40,          // error accessing context entry
  sm_context_not_present = 0x41,     // present bit in context entry clear
  sm_context_reserved = 0x42,        // reserved field set in context entry
  sm_context_invalid = 0x43,         // invalid context entry
  sm_context_dte_clear = 0x44,       // DTE clear in context entry
  sm_context_paside_clear = 0x45,    // PASIDE clear in context entry
  sm_pasid_too_large = 0x46,         // PASID larger than the context entry's max
  sm_context_pre_clear = 0x47,       // PRE clear in context entry
  sm_rid_pasid_error = 0x48,         // RID_PASID field error
  sm_pasid_dir_access = 0x50,        // error accessing PASID directory entry
  sm_pasid_dir_not_present = 0x51,   // present bit in PASID directory entry clear
  sm_pasid_dir_reserved = 0x52,      // reserved field set in PASID directory entry
  sm_pasid_entry_access = 0x58,      // error accessing PASID table entry.
                                     // DISAGREE: old QEMU named 0x58 "Invalid PASID table
                                     // entry" (old Q:VTD_FR_PASID_TABLE_INV); newer QEMU agrees
                                     // with Linux (Q:VTD_FR_PASID_TABLE_ACCESS_ERR)
  sm_pasid_entry_not_present = 0x59, // present bit in PASID table entry clear
  sm_pasid_entry_reserved = 0x5a,    // reserved field set in PASID table entry
  sm_pasid_entry_invalid = 0x5b,     // invalid PASID table entry
  sm_pasid_entry_ere_clear = 0x5c,   // ERE clear in PASID table entry
  sm_pasid_entry_sre_clear = 0x5d,   // SRE clear in PASID table entry
  sm_fs_entry_access = 0x70,         // error accessing first-stage paging entry
  sm_fs_entry_not_present = 0x71,    // present bit clear in first-stage entry
  sm_fs_entry_reserved = 0x72,       // reserved field set in first-stage entry
  sm_fs_pml4_access = 0x73,          // error accessing FL-PML4 entry.
                                     // DISAGREE: QEMU names 0x73 "Invalid FSPTPTR in PASID entry"
                                     // (Q:VTD_FR_PASID_ENTRY_FSPTPTR_INV)
  sm_nested_fs_beyond_mgaw = 0x74,   // first-stage entry address beyond MGAW (nested)
  sm_nested_fs_pml4_read = 0x75,     // read permission error in FL-PML4 entry (nested)
  sm_nested_fs_read = 0x76,          // read permission error in first-stage entry (nested)
  sm_nested_fs_write = 0x77,         // write permission error in first-stage entry (nested)
  sm_ss_entry_access = 0x78,         // error accessing second-stage paging entry
  sm_ss_rw_permission = 0x79,        // read/write permission error in second-stage entry
  sm_ss_entry_reserved = 0x7a,       // reserved field set in second-stage entry
  sm_ss_ptr_invalid = 0x7b,          // invalid second-stage page table pointer
  sm_ss_ad_no_snoop = 0x7c,          // A/D update needed in second-stage entry, no snoop
  sm_fs_non_canonical = 0x80,        // first-stage address not canonical
  sm_fs_user_privilege = 0x81,       // U/S 0 for a user-privilege request
  sm_no_execute = 0x82,              // no execute permission (request with PASID, ER=1)
  sm_beyond_hw_max = 0x83,           // address beyond the hardware maximum
  sm_ss_beyond_max = 0x84,           // second-stage entry address beyond the maximum
  sm_no_write = 0x85,                // no write permission for write/atomic
  sm_no_read = 0x86,                 // no read permission for read/atomic
  sm_interrupt_addr = 0x87,          // address in the interrupt range
  sm_fs_ad_no_snoop = 0x90,          // A/D update needed in first-stage entry, no snoop
  sm_fs_bit_update_failed = 0x91,    // QEMU only (Q:VTD_FR_FS_BIT_UPDATE_FAILED).
                                     // DISAGREE (possible): Linux has no 0x91 and lists the
                                     // first-stage A/D-update fault at 0x90
};
// Which table a reason belongs to, the way Linux classifies it (dmar.c:1837-1850).
// The enumerator's name in capitals ("SM_FS_ENTRY_NOT_PRESENT"), the name scenarios pin; ""
// for a code no source names.
std::string_view fault_reason_name(uint8_t reason);
enum class FaultClass : uint8_t { dma_legacy, interrupt, dma_scalable, unknown };
FaultClass fault_class(uint8_t reason);

// Fault request type, hi bit 62 (iommu.h:348; dmar.c:1941 "type ? DMA Read : DMA Write";
// Q:VTD_FRCD_T).
enum class FaultType : uint8_t { write = 0, read = 1 };

// Fault recording register, 128 bits; [1] is read as the dwords at +8 and +12 (dmar.c:1992,
// :2002).
// DISAGREE: Linux reads a 20-bit PASID at bits 123:104 (iommu.h:351); QEMU writes only 16
// bits there (Q:VTD_FRCD_PV masks 0xffff). The encoding follows Linux.
struct FaultRecord {
  uint64_t fi = 0;    // bits 63:12, faulting page address (iommu.h:354; Q:VTD_FRCD_FI);
                      // for interrupt faults bits 63:48 hold the index (dmar.c:1933;
                      // Q:VTD_FRCD_IR_IDX)
  uint16_t sid = 0;   // bits 79:64, source id (iommu.h:350; Q:VTD_FRCD_SID)
  bool pp = false;    // bit 95, PASID present (iommu.h:352; Q:VTD_FRCD_PP)
  uint8_t reason = 0; // bits 103:96 (iommu.h:349; Q:VTD_FRCD_FR)
  uint32_t pasid = 0; // bits 123:104 (iommu.h:351)
  FaultType type = FaultType::write; // bit 126 (iommu.h:348; Q:VTD_FRCD_T)
  bool f = false;                    // bit 127, fault logged (iommu.h:347; Q:VTD_FRCD_F)
  friend bool operator==(const FaultRecord&, const FaultRecord&) = default;
};
inline constexpr Words2 kFaultRecordFields = {0xffff'ffff'ffff'f000ull, 0xcfff'ffff'8000'ffffull};
Words2 encode(const FaultRecord& r);
FaultRecord decode_fault_record(const Words2& w);

// CAP_REG (iommu.h:162-191; cap_audit.h:13-31; Q:VTD_CAP_*). Counts are kept raw, as coded.
struct CapReg {
  uint8_t nd = 0;       // bits 2:0, domains = 2^(4+2*nd) (iommu.h:191)
  bool afl = false;     // bit 3 (iommu.h:190)
  bool rwbf = false;    // bit 4 (iommu.h:189)
  bool plmr = false;    // bit 5 (iommu.h:188)
  bool phmr = false;    // bit 6 (iommu.h:187)
  bool cm = false;      // bit 7, caching mode (iommu.h:186; Q:VTD_CAP_CM)
  uint8_t sagaw = 0;    // bits 12:8, bit k = AW k supported (iommu.h:185; Q:VTD_CAP_SAGAW_*)
  uint8_t mgaw = 0;     // bits 21:16, MGAW - 1 (iommu.h:184; Q:VTD_CAP_MGAW)
  bool zlr = false;     // bit 22 (iommu.h:182)
  bool isoch = false;   // bit 23 (iommu.h:183)
  uint16_t fro = 0;     // bits 33:24, fault-recording offset / 16 (iommu.h:178; Q:VTD_CAP_FRO)
  uint8_t sllps = 0;    // bits 37:34 (iommu.h:174; cap_audit.h:21; Q:VTD_CAP_SLLPS)
  bool psi = false;     // bit 39, page-selective invalidation (iommu.h:172; Q:VTD_CAP_PSI)
  uint8_t nfr = 0;      // bits 47:40, fault-recording registers - 1 (iommu.h:171; Q:VTD_CAP_NFR)
  uint8_t mamv = 0;     // bits 53:48, max address mask value (iommu.h:170; Q:VTD_CAP_MAMV)
  bool dwd = false;     // bit 54, write draining (iommu.h:169; Q:VTD_CAP_DRAIN_WRITE)
  bool drd = false;     // bit 55, read draining (iommu.h:168; Q:VTD_CAP_DRAIN_READ)
  bool fl1gp = false;   // bit 56, first-stage 1G pages (iommu.h:167; Q:VTD_CAP_FS1GP)
  bool pi = false;      // bit 59, posted interrupts (iommu.h:166)
  bool fl5lp = false;   // bit 60, first-stage 5-level paging (iommu.h:165)
  bool ecmds = false;   // bit 61 (iommu.h:164)
  bool esirtps = false; // bit 62 (iommu.h:163)
  bool esrtps = false;  // bit 63 (iommu.h:162)
  friend bool operator==(const CapReg&, const CapReg&) = default;
};
inline constexpr uint64_t kCapRegFields = 0xf9ff'ffbf'ffff'1fffull;
uint64_t encode(const CapReg& c);
CapReg decode_cap_reg(uint64_t w);
inline constexpr uint32_t cap_num_domains(const CapReg& c) {
  return 1u << (4 + 2 * c.nd);
}
inline constexpr unsigned cap_mgaw_bits(const CapReg& c) {
  return c.mgaw + 1u;
}
inline constexpr uint32_t cap_fault_reg_offset(const CapReg& c) {
  return c.fro * 16u;
}
inline constexpr unsigned cap_num_fault_regs(const CapReg& c) {
  return c.nfr + 1u;
}

// ECAP_REG (iommu.h:196-225; cap_audit.h:36-61; Q:VTD_ECAP_*).
struct EcapReg {
  bool c = false;         // bit 0, coherency (iommu.h:218)
  bool qi = false;        // bit 1, queued invalidation (iommu.h:219; Q:VTD_ECAP_QI)
  bool dt = false;        // bit 2, device-TLB (iommu.h:223; Q:VTD_ECAP_DT)
  bool ir = false;        // bit 3, interrupt remapping (iommu.h:222; Q:VTD_ECAP_IR)
  bool eim = false;       // bit 4 (iommu.h:221; Q:VTD_ECAP_EIM)
  bool pt = false;        // bit 6, pass-through (iommu.h:220; Q:VTD_ECAP_PT)
  bool sc = false;        // bit 7, snoop control (iommu.h:225; Q:VTD_ECAP_SC)
  uint16_t iro = 0;       // bits 17:8, IOTLB register offset / 16 (iommu.h:216; Q:VTD_ECAP_IRO)
  uint8_t mhmv = 0;       // bits 23:20 (iommu.h:224; Q:VTD_ECAP_MHMV)
  bool mts = false;       // bit 25 (iommu.h:215)
  bool nest = false;      // bit 26 (iommu.h:214)
  bool dis = false;       // bit 27 (iommu.h:213)
  bool pasid_old = false; // bit 28, Linux "ecap_broken_pasid" (iommu.h:212)
  bool prs = false;       // bit 29, page requests (iommu.h:211)
  bool ers = false;       // bit 30, execute requests (iommu.h:210)
  bool srs = false;       // bit 31, supervisor requests (iommu.h:209; Q:VTD_ECAP_SRS)
  bool nwfs = false;      // bit 33 (iommu.h:208)
  bool eafs = false;      // bit 34 (iommu.h:207)
  uint8_t pss = 0;        // bits 39:35, PASID size - 1 (iommu.h:206; Q:VTD_ECAP_PSS)
  bool pasid = false;     // bit 40 (iommu.h:205; Q:VTD_ECAP_PASID)
  bool dit = false;       // bit 41 (iommu.h:203)
  bool pds = false;       // bit 42 (iommu.h:204)
  bool smts = false;      // bit 43, scalable mode (iommu.h:202; Q:VTD_ECAP_SMTS)
  bool vcs = false;       // bit 44, virtual command (cap_audit.h:41 only)
  bool slads = false;     // bit 45 (iommu.h:201)
  bool slts = false;      // bit 46 (iommu.h:200; Q:VTD_ECAP_SLTS)
  bool flts = false;      // bit 47 (iommu.h:199; Q:VTD_ECAP_FLTS)
  bool smpwcs = false;    // bit 48 (iommu.h:198)
  bool rps = false;       // bit 49 (iommu.h:197)
  bool pms = false;       // bit 51, performance monitoring (iommu.h:196)
  friend bool operator==(const EcapReg&, const EcapReg&) = default;
};
inline constexpr uint64_t kEcapRegFields = 0x000b'fffe'fef3'ffdfull;
uint64_t encode(const EcapReg& e);
EcapReg decode_ecap_reg(uint64_t w);

// GCMD_REG, 32 bits (iommu.h:277-285; Q:VTD_GCMD_*).
struct GcmdReg {
  bool cfi = false;   // bit 23
  bool sirtp = false; // bit 24
  bool ire = false;   // bit 25
  bool qie = false;   // bit 26
  bool wbf = false;   // bit 27
  bool eafl = false;  // bit 28
  bool sfl = false;   // bit 29
  bool srtp = false;  // bit 30
  bool te = false;    // bit 31
  friend bool operator==(const GcmdReg&, const GcmdReg&) = default;
};
inline constexpr uint32_t kGcmdRegFields = 0xff80'0000u;
uint32_t encode(const GcmdReg& g);
GcmdReg decode_gcmd(uint32_t w);

// GSTS_REG, 32 bits, the same positions (iommu.h:288-296; Q:VTD_GSTS_*).
struct GstsReg {
  bool cfis = false;  // bit 23
  bool irtps = false; // bit 24
  bool ires = false;  // bit 25
  bool qies = false;  // bit 26
  bool wbfs = false;  // bit 27
  bool afls = false;  // bit 28
  bool fls = false;   // bit 29
  bool rtps = false;  // bit 30
  bool tes = false;   // bit 31
  friend bool operator==(const GstsReg&, const GstsReg&) = default;
};
inline constexpr uint32_t kGstsRegFields = 0xff80'0000u;
uint32_t encode(const GstsReg& g);
GstsReg decode_gsts(uint32_t w);

// RTADDR_REG (iommu.h:299; iommu.c:1128, :2222; Q:VTD_RTADDR_SMT, Q:VTD_RTADDR_ADDR_MASK).
struct RtaddrReg {
  bool smt = false; // bit 10, scalable-mode root table
  uint64_t rta = 0; // bits 63:12
  friend bool operator==(const RtaddrReg&, const RtaddrReg&) = default;
};
inline constexpr uint64_t kRtaddrRegFields = 0xffff'ffff'ffff'f400ull;
uint64_t encode(const RtaddrReg& r);
RtaddrReg decode_rtaddr(uint64_t w);

// IQA_REG (dmar.c:1663-1674; Q:VTD_IQA_IQA_MASK, Q:VTD_IQA_DW_MASK, Q:VTD_IQA_QS).
struct IqaReg {
  uint8_t qs = 0;             // bits 2:0, queue size
  QiWidth dw = QiWidth::d128; // bit 11, descriptor width
  uint64_t iqa = 0;           // bits 63:12, queue base
  friend bool operator==(const IqaReg&, const IqaReg&) = default;
};
inline constexpr uint64_t kIqaRegFields = 0xffff'ffff'ffff'f807ull;
uint64_t encode(const IqaReg& r);
IqaReg decode_iqa(uint64_t w);
// Queue entries: 2^(qs+8) for 128-bit descriptors, half that for 256-bit
// (Qc:vtd_handle_gcmd_qie; Linux: QS=1 with DW=1 for its 256-entry queue, dmar.c:1667,
// iommu.h:378).
inline constexpr uint32_t iq_entries(const IqaReg& r) {
  return 1u << (r.qs + 8 - (r.dw == QiWidth::d256 ? 1 : 0));
}

// IQH_REG / IQT_REG: the descriptor index, shifted by 4 for 128-bit and 5 for 256-bit
// descriptors, within bits 18:4 (iommu.h:87, :475 qi_shift; Q:VTD_IQT_QT, Q:VTD_IQH_QH_MASK;
// with 256-bit descriptors bit 4 is reserved, Q:VTD_IQT_QT_256_RSV_BIT).
struct IqPointer {
  uint16_t index = 0;
  friend bool operator==(const IqPointer&, const IqPointer&) = default;
};
uint64_t iq_pointer_fields(QiWidth dw); // the represented bits
uint64_t encode(const IqPointer& p, QiWidth dw);
IqPointer decode_iq_pointer(uint64_t w, QiWidth dw);

// FSTS_REG, 32 bits (iommu.h:338-344; Q:VTD_FSTS_*).
struct FstsReg {
  bool pfo = false; // bit 0, primary fault overflow
  bool ppf = false; // bit 1, primary pending fault
  bool iqe = false; // bit 4, invalidation queue error
  bool ice = false; // bit 5, invalidation completion error
  bool ite = false; // bit 6, invalidation time-out error
  bool pro = false; // bit 7, page request overflow (Linux only)
  uint8_t fri = 0;  // bits 15:8, fault record index (iommu.h:344; Q:VTD_FSTS_FRI)
  friend bool operator==(const FstsReg&, const FstsReg&) = default;
};
inline constexpr uint32_t kFstsRegFields = 0x0000'fff3u;
uint32_t encode(const FstsReg& f);
FstsReg decode_fsts(uint32_t w);

// FECTL_REG, 32 bits (iommu.h:335; Q:VTD_FECTL_IM, Q:VTD_FECTL_IP).
struct FectlReg {
  bool ip = false; // bit 30, interrupt pending (QEMU only)
  bool im = false; // bit 31, interrupt mask
  friend bool operator==(const FectlReg&, const FectlReg&) = default;
};
inline constexpr uint32_t kFectlRegFields = 0xc000'0000u;
uint32_t encode(const FectlReg& f);
FectlReg decode_fectl(uint32_t w);

} // namespace iommuspec::vtd

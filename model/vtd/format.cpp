// Encoders and decoders for the VT-d formats in format.h. Bit positions are cited there.
#include "vtd/format.h"

#include "vtd/range.h"

namespace iommuspec::vtd {

namespace {

constexpr uint64_t low_mask(unsigned width) {
  return width >= 64 ? ~0ull : (1ull << width) - 1;
}
// Bits [lo, lo + width) of w, shifted down.
constexpr uint64_t get(uint64_t w, unsigned lo, unsigned width) {
  return (w >> lo) & low_mask(width);
}
// v truncated to `width` bits, placed at bit lo.
constexpr uint64_t put(uint64_t v, unsigned lo, unsigned width) {
  return (v & low_mask(width)) << lo;
}
constexpr bool bit(uint64_t w, unsigned b) {
  return (w >> b) & 1;
}
constexpr uint64_t flag(bool v, unsigned b) {
  return uint64_t(v) << b;
}
// Bits hi:lo of w, in place.
constexpr uint64_t span(uint64_t w, unsigned hi, unsigned lo) {
  return w & (low_mask(hi - lo + 1) << lo);
}

constexpr uint64_t kAddr63_12 = ~0xfffull;

// Type bits 3:0 and 11:9 of qw0.
constexpr uint64_t qi_type_bits(QiType t) {
  const auto v = uint64_t(t);
  return put(v, 0, 4) | put(v >> 4, 9, 3);
}
bool has_type(const QiDesc& d, QiType t) {
  return qi_type(d[0]) == uint8_t(t);
}

} // namespace

// --- legacy root and context entries -----------------------------------------------------

Words2 encode(const RootEntry& e) {
  return {flag(e.present, 0) | (e.ctp & kAddr63_12), 0};
}
RootEntry decode_root_entry(const Words2& w) {
  return {.present = bit(w[0], 0), .ctp = w[0] & kAddr63_12};
}

Words2 encode(const ContextEntry& e) {
  const uint64_t lo =
      flag(e.present, 0) | flag(e.fpd, 1) | put(uint64_t(e.tt), 2, 2) | (e.slptptr & kAddr63_12);
  const uint64_t hi = put(e.aw, 0, 3) | put(e.avail, 3, 4) | put(e.did, 8, 16);
  return {lo, hi};
}
ContextEntry decode_context_entry(const Words2& w) {
  return {.present = bit(w[0], 0),
          .fpd = bit(w[0], 1),
          .tt = TranslationType(get(w[0], 2, 2)),
          .slptptr = w[0] & kAddr63_12,
          .aw = uint8_t(get(w[1], 0, 3)),
          .avail = uint8_t(get(w[1], 3, 4)),
          .did = uint16_t(get(w[1], 8, 16))};
}

// --- scalable-mode entries ----------------------------------------------------------------

Words2 encode(const SmRootEntry& e) {
  return {flag(e.lower_present, 0) | (e.lctp & kAddr63_12),
          flag(e.upper_present, 0) | (e.uctp & kAddr63_12)};
}
SmRootEntry decode_sm_root_entry(const Words2& w) {
  return {.lower_present = bit(w[0], 0),
          .lctp = w[0] & kAddr63_12,
          .upper_present = bit(w[1], 0),
          .uctp = w[1] & kAddr63_12};
}

Words4 encode(const SmContextEntry& e) {
  const uint64_t lo = flag(e.present, 0) | flag(e.fpd, 1) | flag(e.dte, 2) | flag(e.paside, 3) |
                      flag(e.pre, 4) | put(e.pdts, 9, 3) | (e.pasid_dir_ptr & kAddr63_12);
  return {lo, put(e.rid_pasid, 0, 20), 0, 0};
}
SmContextEntry decode_sm_context_entry(const Words4& w) {
  return {.present = bit(w[0], 0),
          .fpd = bit(w[0], 1),
          .dte = bit(w[0], 2),
          .paside = bit(w[0], 3),
          .pre = bit(w[0], 4),
          .pdts = uint8_t(get(w[0], 9, 3)),
          .pasid_dir_ptr = w[0] & kAddr63_12,
          .rid_pasid = uint32_t(get(w[1], 0, 20))};
}

uint32_t pasid_dir_entries(uint8_t pdts) {
  return 1u << ((pdts & 7u) + 7);
}

uint64_t encode(const PasidDirEntry& e) {
  return flag(e.present, 0) | flag(e.fpd, 1) | (e.pasid_table & kAddr63_12);
}
PasidDirEntry decode_pasid_dir_entry(uint64_t w) {
  return {.present = bit(w, 0), .fpd = bit(w, 1), .pasid_table = w & kAddr63_12};
}

Words8 encode(const PasidEntry& e) {
  Words8 w{};
  w[0] = flag(e.present, 0) | flag(e.fpd, 1) | put(e.aw, 2, 3) | put(uint64_t(e.pgtt), 6, 3) |
         flag(e.slade, 9) | (e.slptptr & kAddr63_12);
  w[1] = put(e.did, 0, 16) | flag(e.pwsnp, 23) | flag(e.pgsnp, 24);
  w[2] = flag(e.sre, 0) | put(e.flpm, 2, 2) | flag(e.wpe, 4) | flag(e.eafe, 7) |
         (e.flptptr & kAddr63_12);
  return w;
}
PasidEntry decode_pasid_entry(const Words8& w) {
  return {.present = bit(w[0], 0),
          .fpd = bit(w[0], 1),
          .aw = uint8_t(get(w[0], 2, 3)),
          .pgtt = Pgtt(get(w[0], 6, 3)),
          .slade = bit(w[0], 9),
          .slptptr = w[0] & kAddr63_12,
          .did = uint16_t(get(w[1], 0, 16)),
          .pwsnp = bit(w[1], 23),
          .pgsnp = bit(w[1], 24),
          .sre = bit(w[2], 0),
          .flpm = uint8_t(get(w[2], 2, 2)),
          .wpe = bit(w[2], 4),
          .eafe = bit(w[2], 7),
          .flptptr = w[2] & kAddr63_12};
}

// --- page-table entries --------------------------------------------------------------------

uint64_t encode(const SsPte& e) {
  return flag(e.r, 0) | flag(e.w, 1) | flag(e.ps, 7) | flag(e.d, 9) | flag(e.snp, 11) |
         flag(e.tm, 62) | span(e.addr, 51, 12);
}
SsPte decode_ss_pte(uint64_t w) {
  return {.r = bit(w, 0),
          .w = bit(w, 1),
          .ps = bit(w, 7),
          .d = bit(w, 9),
          .snp = bit(w, 11),
          .tm = bit(w, 62),
          .addr = span(w, 51, 12)};
}

uint64_t encode(const FsPte& e) {
  return flag(e.p, 0) | flag(e.rw, 1) | flag(e.us, 2) | flag(e.pwt, 3) | flag(e.pcd, 4) |
         flag(e.a, 5) | flag(e.d, 6) | flag(e.ps, 7) | flag(e.g, 8) | flag(e.xd, 63) |
         span(e.addr, 51, 12);
}
FsPte decode_fs_pte(uint64_t w) {
  return {.p = bit(w, 0),
          .rw = bit(w, 1),
          .us = bit(w, 2),
          .pwt = bit(w, 3),
          .pcd = bit(w, 4),
          .a = bit(w, 5),
          .d = bit(w, 6),
          .ps = bit(w, 7),
          .g = bit(w, 8),
          .xd = bit(w, 63),
          .addr = span(w, 51, 12)};
}

std::optional<unsigned> fs_levels(uint8_t flpm) {
  if (flpm == 0) return 4;
  if (flpm == 1) return 5;
  return std::nullopt;
}

bool ss_large_page_allowed(const CapReg& cap, unsigned level) {
  if (level < 2 || level > 5) return false;
  return bit(cap.sllps, level - 2);
}

bool fs_large_page_allowed(const CapReg& cap, unsigned level) {
  if (level == 2) return true;
  if (level == 3) return cap.fl1gp;
  return false;
}

// --- queued-invalidation descriptors ---------------------------------------------------------

uint8_t qi_type(uint64_t qw0) {
  return uint8_t(get(qw0, 0, 4) | (get(qw0, 9, 3) << 4));
}

QiDesc encode(const ContextCacheInv& d) {
  return {qi_type_bits(QiType::context_cache) | put(uint64_t(d.g), 4, 2) | put(d.did, 16, 16) |
              put(d.sid, 32, 16) | put(d.fm, 48, 2),
          0, 0, 0};
}
std::optional<ContextCacheInv> decode_context_cache_inv(const QiDesc& d) {
  if (!has_type(d, QiType::context_cache)) return std::nullopt;
  return ContextCacheInv{.g = CcGranularity(get(d[0], 4, 2)),
                         .did = uint16_t(get(d[0], 16, 16)),
                         .sid = uint16_t(get(d[0], 32, 16)),
                         .fm = uint8_t(get(d[0], 48, 2))};
}

QiDesc encode(const IotlbInv& d) {
  return {qi_type_bits(QiType::iotlb) | put(uint64_t(d.g), 4, 2) | flag(d.dw, 6) | flag(d.dr, 7) |
              put(d.did, 16, 16),
          put(d.am, 0, 6) | flag(d.ih, 6) | (d.addr & kAddr63_12), 0, 0};
}
std::optional<IotlbInv> decode_iotlb_inv(const QiDesc& d) {
  if (!has_type(d, QiType::iotlb)) return std::nullopt;
  return IotlbInv{.g = IotlbGranularity(get(d[0], 4, 2)),
                  .dw = bit(d[0], 6),
                  .dr = bit(d[0], 7),
                  .did = uint16_t(get(d[0], 16, 16)),
                  .am = uint8_t(get(d[1], 0, 6)),
                  .ih = bit(d[1], 6),
                  .addr = d[1] & kAddr63_12};
}

namespace {
// PFSID[3:0] at qw0 bits 15:12 and PFSID[15:4] at bits 63:52 (iommu.h:423-424, :453-454).
constexpr uint64_t put_pfsid(uint16_t pfsid) {
  return put(pfsid, 12, 4) | put(uint64_t(pfsid) >> 4, 52, 12);
}
constexpr uint16_t get_pfsid(uint64_t qw0) {
  return uint16_t(get(qw0, 12, 4) | (get(qw0, 52, 12) << 4));
}
} // namespace

QiDesc encode(const DevTlbInv& d) {
  return {qi_type_bits(QiType::dev_tlb) | put_pfsid(d.pfsid) | put(d.mip, 16, 5) |
              put(d.sid, 32, 16),
          flag(d.s, 0) | (d.addr & kAddr63_12), 0, 0};
}
std::optional<DevTlbInv> decode_dev_tlb_inv(const QiDesc& d) {
  if (!has_type(d, QiType::dev_tlb)) return std::nullopt;
  return DevTlbInv{.pfsid = get_pfsid(d[0]),
                   .mip = uint8_t(get(d[0], 16, 5)),
                   .sid = uint16_t(get(d[0], 32, 16)),
                   .s = bit(d[1], 0),
                   .addr = d[1] & kAddr63_12};
}

QiDesc encode(const IecInv& d) {
  return {qi_type_bits(QiType::iec) | flag(d.selective, 4) | put(d.im, 27, 5) | put(d.iidx, 32, 16),
          0, 0, 0};
}
std::optional<IecInv> decode_iec_inv(const QiDesc& d) {
  if (!has_type(d, QiType::iec)) return std::nullopt;
  return IecInv{.selective = bit(d[0], 4),
                .im = uint8_t(get(d[0], 27, 5)),
                .iidx = uint16_t(get(d[0], 32, 16))};
}

QiDesc encode(const InvWait& d) {
  return {qi_type_bits(QiType::wait) | flag(d.if_, 4) | flag(d.sw, 5) | flag(d.fn, 6) |
              flag(d.pd, 7) | put(d.status_data, 32, 32),
          d.status_addr & ~0x3ull, 0, 0};
}
std::optional<InvWait> decode_inv_wait(const QiDesc& d) {
  if (!has_type(d, QiType::wait)) return std::nullopt;
  return InvWait{.if_ = bit(d[0], 4),
                 .sw = bit(d[0], 5),
                 .fn = bit(d[0], 6),
                 .pd = bit(d[0], 7),
                 .status_data = uint32_t(get(d[0], 32, 32)),
                 .status_addr = d[1] & ~0x3ull};
}

QiDesc encode(const PasidCacheInv& d) {
  return {qi_type_bits(QiType::pasid_cache) | put(uint64_t(d.g), 4, 2) | put(d.did, 16, 16) |
              put(d.pasid, 32, 20),
          0, 0, 0};
}
std::optional<PasidCacheInv> decode_pasid_cache_inv(const QiDesc& d) {
  if (!has_type(d, QiType::pasid_cache)) return std::nullopt;
  return PasidCacheInv{.g = PasidCacheGranularity(get(d[0], 4, 2)),
                       .did = uint16_t(get(d[0], 16, 16)),
                       .pasid = uint32_t(get(d[0], 32, 20))};
}

QiDesc encode(const PasidIotlbInv& d) {
  return {qi_type_bits(QiType::pasid_iotlb) | put(uint64_t(d.g), 4, 2) | put(d.did, 16, 16) |
              put(d.pasid, 32, 20),
          put(d.am, 0, 6) | flag(d.ih, 6) | (d.addr & kAddr63_12), 0, 0};
}
std::optional<PasidIotlbInv> decode_pasid_iotlb_inv(const QiDesc& d) {
  if (!has_type(d, QiType::pasid_iotlb)) return std::nullopt;
  return PasidIotlbInv{.g = PasidIotlbGranularity(get(d[0], 4, 2)),
                       .did = uint16_t(get(d[0], 16, 16)),
                       .pasid = uint32_t(get(d[0], 32, 20)),
                       .am = uint8_t(get(d[1], 0, 6)),
                       .ih = bit(d[1], 6),
                       .addr = d[1] & kAddr63_12};
}

QiDesc encode(const PasidDevTlbInv& d) {
  return {qi_type_bits(QiType::pasid_dev_tlb) | put(d.mip, 4, 5) | put_pfsid(d.pfsid) |
              put(d.sid, 16, 16) | put(d.pasid, 32, 20),
          flag(d.g, 0) | flag(d.s, 11) | (d.addr & kAddr63_12), 0, 0};
}
std::optional<PasidDevTlbInv> decode_pasid_dev_tlb_inv(const QiDesc& d) {
  if (!has_type(d, QiType::pasid_dev_tlb)) return std::nullopt;
  return PasidDevTlbInv{.mip = uint8_t(get(d[0], 4, 5)),
                        .pfsid = get_pfsid(d[0]),
                        .sid = uint16_t(get(d[0], 16, 16)),
                        .pasid = uint32_t(get(d[0], 32, 20)),
                        .g = bit(d[1], 0),
                        .s = bit(d[1], 11),
                        .addr = d[1] & kAddr63_12};
}

// range.h dev_tlb_span and dev_tlb_addr (iommu.h:1189-1218).
ByteRange dev_tlb_range(uint64_t addr, bool s) {
  const auto r = dev_tlb_span<uint64_t>(addr, s);
  return {r.lo, r.hi};
}

uint64_t dev_tlb_addr_bits(uint64_t addr, unsigned size_order) {
  return dev_tlb_addr<uint64_t>(addr, size_order);
}

QiDesc encode(const QiDescriptor& d) {
  return std::visit([](const auto& x) { return encode(x); }, d);
}

std::optional<QiDescriptor> decode_qi_descriptor(const QiDesc& d) {
  const auto wrap = [](const auto& o) -> std::optional<QiDescriptor> {
    if (!o) return std::nullopt;
    return QiDescriptor{*o};
  };
  switch (QiType(qi_type(d[0]))) {
  case QiType::context_cache:
    return wrap(decode_context_cache_inv(d));
  case QiType::iotlb:
    return wrap(decode_iotlb_inv(d));
  case QiType::dev_tlb:
    return wrap(decode_dev_tlb_inv(d));
  case QiType::iec:
    return wrap(decode_iec_inv(d));
  case QiType::wait:
    return wrap(decode_inv_wait(d));
  case QiType::pasid_iotlb:
    return wrap(decode_pasid_iotlb_inv(d));
  case QiType::pasid_cache:
    return wrap(decode_pasid_cache_inv(d));
  case QiType::pasid_dev_tlb:
    return wrap(decode_pasid_dev_tlb_inv(d));
  case QiType::page_group_resp:
  case QiType::page_stream_resp:
    break;
  }
  return std::nullopt;
}

// --- fault recording and registers ---------------------------------------------------------

std::string_view fault_reason_name(uint8_t reason) {
  switch (FaultReason(reason)) {
  case FaultReason::software:
    return "SOFTWARE";
  case FaultReason::root_not_present:
    return "ROOT_NOT_PRESENT";
  case FaultReason::context_not_present:
    return "CONTEXT_NOT_PRESENT";
  case FaultReason::context_invalid:
    return "CONTEXT_INVALID";
  case FaultReason::beyond_mgaw:
    return "BEYOND_MGAW";
  case FaultReason::no_write:
    return "NO_WRITE";
  case FaultReason::no_read:
    return "NO_READ";
  case FaultReason::next_table_invalid:
    return "NEXT_TABLE_INVALID";
  case FaultReason::root_table_invalid:
    return "ROOT_TABLE_INVALID";
  case FaultReason::context_table_invalid:
    return "CONTEXT_TABLE_INVALID";
  case FaultReason::root_reserved:
    return "ROOT_RESERVED";
  case FaultReason::context_reserved:
    return "CONTEXT_RESERVED";
  case FaultReason::pte_reserved:
    return "PTE_RESERVED";
  case FaultReason::context_tt_blocked:
    return "CONTEXT_TT_BLOCKED";
  case FaultReason::interrupt_addr:
    return "INTERRUPT_ADDR";
  case FaultReason::ir_request_reserved:
    return "IR_REQUEST_RESERVED";
  case FaultReason::ir_index_over:
    return "IR_INDEX_OVER";
  case FaultReason::ir_entry_not_present:
    return "IR_ENTRY_NOT_PRESENT";
  case FaultReason::ir_root_invalid:
    return "IR_ROOT_INVALID";
  case FaultReason::ir_irte_reserved:
    return "IR_IRTE_RESERVED";
  case FaultReason::ir_compat_blocked:
    return "IR_COMPAT_BLOCKED";
  case FaultReason::ir_sid_error:
    return "IR_SID_ERROR";
  case FaultReason::sm_root_table_invalid:
    return "SM_ROOT_TABLE_INVALID";
  case FaultReason::sm_ttm0_pasid:
    return "SM_TTM0_PASID";
  case FaultReason::sm_ttm0_page_group:
    return "SM_TTM0_PAGE_GROUP";
  case FaultReason::sm_root_access:
    return "SM_ROOT_ACCESS";
  case FaultReason::sm_root_not_present:
    return "SM_ROOT_NOT_PRESENT";
  case FaultReason::sm_root_reserved:
    return "SM_ROOT_RESERVED";
  case FaultReason::sm_context_access:
    return "SM_CONTEXT_ACCESS";
  case FaultReason::sm_context_not_present:
    return "SM_CONTEXT_NOT_PRESENT";
  case FaultReason::sm_context_reserved:
    return "SM_CONTEXT_RESERVED";
  case FaultReason::sm_context_invalid:
    return "SM_CONTEXT_INVALID";
  case FaultReason::sm_context_dte_clear:
    return "SM_CONTEXT_DTE_CLEAR";
  case FaultReason::sm_context_paside_clear:
    return "SM_CONTEXT_PASIDE_CLEAR";
  case FaultReason::sm_pasid_too_large:
    return "SM_PASID_TOO_LARGE";
  case FaultReason::sm_context_pre_clear:
    return "SM_CONTEXT_PRE_CLEAR";
  case FaultReason::sm_rid_pasid_error:
    return "SM_RID_PASID_ERROR";
  case FaultReason::sm_pasid_dir_access:
    return "SM_PASID_DIR_ACCESS";
  case FaultReason::sm_pasid_dir_not_present:
    return "SM_PASID_DIR_NOT_PRESENT";
  case FaultReason::sm_pasid_dir_reserved:
    return "SM_PASID_DIR_RESERVED";
  case FaultReason::sm_pasid_entry_access:
    return "SM_PASID_ENTRY_ACCESS";
  case FaultReason::sm_pasid_entry_not_present:
    return "SM_PASID_ENTRY_NOT_PRESENT";
  case FaultReason::sm_pasid_entry_reserved:
    return "SM_PASID_ENTRY_RESERVED";
  case FaultReason::sm_pasid_entry_invalid:
    return "SM_PASID_ENTRY_INVALID";
  case FaultReason::sm_pasid_entry_ere_clear:
    return "SM_PASID_ENTRY_ERE_CLEAR";
  case FaultReason::sm_pasid_entry_sre_clear:
    return "SM_PASID_ENTRY_SRE_CLEAR";
  case FaultReason::sm_fs_entry_access:
    return "SM_FS_ENTRY_ACCESS";
  case FaultReason::sm_fs_entry_not_present:
    return "SM_FS_ENTRY_NOT_PRESENT";
  case FaultReason::sm_fs_entry_reserved:
    return "SM_FS_ENTRY_RESERVED";
  case FaultReason::sm_fs_pml4_access:
    return "SM_FS_PML4_ACCESS";
  case FaultReason::sm_nested_fs_beyond_mgaw:
    return "SM_NESTED_FS_BEYOND_MGAW";
  case FaultReason::sm_nested_fs_pml4_read:
    return "SM_NESTED_FS_PML4_READ";
  case FaultReason::sm_nested_fs_read:
    return "SM_NESTED_FS_READ";
  case FaultReason::sm_nested_fs_write:
    return "SM_NESTED_FS_WRITE";
  case FaultReason::sm_ss_entry_access:
    return "SM_SS_ENTRY_ACCESS";
  case FaultReason::sm_ss_rw_permission:
    return "SM_SS_RW_PERMISSION";
  case FaultReason::sm_ss_entry_reserved:
    return "SM_SS_ENTRY_RESERVED";
  case FaultReason::sm_ss_ptr_invalid:
    return "SM_SS_PTR_INVALID";
  case FaultReason::sm_ss_ad_no_snoop:
    return "SM_SS_AD_NO_SNOOP";
  case FaultReason::sm_fs_non_canonical:
    return "SM_FS_NON_CANONICAL";
  case FaultReason::sm_fs_user_privilege:
    return "SM_FS_USER_PRIVILEGE";
  case FaultReason::sm_no_execute:
    return "SM_NO_EXECUTE";
  case FaultReason::sm_beyond_hw_max:
    return "SM_BEYOND_HW_MAX";
  case FaultReason::sm_ss_beyond_max:
    return "SM_SS_BEYOND_MAX";
  case FaultReason::sm_no_write:
    return "SM_NO_WRITE";
  case FaultReason::sm_no_read:
    return "SM_NO_READ";
  case FaultReason::sm_interrupt_addr:
    return "SM_INTERRUPT_ADDR";
  case FaultReason::sm_fs_ad_no_snoop:
    return "SM_FS_AD_NO_SNOOP";
  case FaultReason::sm_fs_bit_update_failed:
    return "SM_FS_BIT_UPDATE_FAILED";
  }
  return "";
}

FaultClass fault_class(uint8_t reason) {
  if (reason >= 0x20 && reason <= 0x26) return FaultClass::interrupt;
  if (reason >= 0x30 && reason <= 0x90) return FaultClass::dma_scalable;
  if (reason <= 0x0d) return FaultClass::dma_legacy;
  return FaultClass::unknown;
}

Words2 encode(const FaultRecord& r) {
  return {r.fi & kAddr63_12, put(r.sid, 0, 16) | flag(r.pp, 31) | put(r.reason, 32, 8) |
                                 put(r.pasid, 40, 20) | flag(r.type == FaultType::read, 62) |
                                 flag(r.f, 63)};
}
FaultRecord decode_fault_record(const Words2& w) {
  return {.fi = w[0] & kAddr63_12,
          .sid = uint16_t(get(w[1], 0, 16)),
          .pp = bit(w[1], 31),
          .reason = uint8_t(get(w[1], 32, 8)),
          .pasid = uint32_t(get(w[1], 40, 20)),
          .type = bit(w[1], 62) ? FaultType::read : FaultType::write,
          .f = bit(w[1], 63)};
}

uint64_t encode(const CapReg& c) {
  return put(c.nd, 0, 3) | flag(c.afl, 3) | flag(c.rwbf, 4) | flag(c.plmr, 5) | flag(c.phmr, 6) |
         flag(c.cm, 7) | put(c.sagaw, 8, 5) | put(c.mgaw, 16, 6) | flag(c.zlr, 22) |
         flag(c.isoch, 23) | put(c.fro, 24, 10) | put(c.sllps, 34, 4) | flag(c.psi, 39) |
         put(c.nfr, 40, 8) | put(c.mamv, 48, 6) | flag(c.dwd, 54) | flag(c.drd, 55) |
         flag(c.fl1gp, 56) | flag(c.pi, 59) | flag(c.fl5lp, 60) | flag(c.ecmds, 61) |
         flag(c.esirtps, 62) | flag(c.esrtps, 63);
}
CapReg decode_cap_reg(uint64_t w) {
  return {.nd = uint8_t(get(w, 0, 3)),
          .afl = bit(w, 3),
          .rwbf = bit(w, 4),
          .plmr = bit(w, 5),
          .phmr = bit(w, 6),
          .cm = bit(w, 7),
          .sagaw = uint8_t(get(w, 8, 5)),
          .mgaw = uint8_t(get(w, 16, 6)),
          .zlr = bit(w, 22),
          .isoch = bit(w, 23),
          .fro = uint16_t(get(w, 24, 10)),
          .sllps = uint8_t(get(w, 34, 4)),
          .psi = bit(w, 39),
          .nfr = uint8_t(get(w, 40, 8)),
          .mamv = uint8_t(get(w, 48, 6)),
          .dwd = bit(w, 54),
          .drd = bit(w, 55),
          .fl1gp = bit(w, 56),
          .pi = bit(w, 59),
          .fl5lp = bit(w, 60),
          .ecmds = bit(w, 61),
          .esirtps = bit(w, 62),
          .esrtps = bit(w, 63)};
}

uint64_t encode(const EcapReg& e) {
  return flag(e.c, 0) | flag(e.qi, 1) | flag(e.dt, 2) | flag(e.ir, 3) | flag(e.eim, 4) |
         flag(e.pt, 6) | flag(e.sc, 7) | put(e.iro, 8, 10) | put(e.mhmv, 20, 4) | flag(e.mts, 25) |
         flag(e.nest, 26) | flag(e.dis, 27) | flag(e.pasid_old, 28) | flag(e.prs, 29) |
         flag(e.ers, 30) | flag(e.srs, 31) | flag(e.nwfs, 33) | flag(e.eafs, 34) |
         put(e.pss, 35, 5) | flag(e.pasid, 40) | flag(e.dit, 41) | flag(e.pds, 42) |
         flag(e.smts, 43) | flag(e.vcs, 44) | flag(e.slads, 45) | flag(e.slts, 46) |
         flag(e.flts, 47) | flag(e.smpwcs, 48) | flag(e.rps, 49) | flag(e.pms, 51);
}
EcapReg decode_ecap_reg(uint64_t w) {
  return {.c = bit(w, 0),
          .qi = bit(w, 1),
          .dt = bit(w, 2),
          .ir = bit(w, 3),
          .eim = bit(w, 4),
          .pt = bit(w, 6),
          .sc = bit(w, 7),
          .iro = uint16_t(get(w, 8, 10)),
          .mhmv = uint8_t(get(w, 20, 4)),
          .mts = bit(w, 25),
          .nest = bit(w, 26),
          .dis = bit(w, 27),
          .pasid_old = bit(w, 28),
          .prs = bit(w, 29),
          .ers = bit(w, 30),
          .srs = bit(w, 31),
          .nwfs = bit(w, 33),
          .eafs = bit(w, 34),
          .pss = uint8_t(get(w, 35, 5)),
          .pasid = bit(w, 40),
          .dit = bit(w, 41),
          .pds = bit(w, 42),
          .smts = bit(w, 43),
          .vcs = bit(w, 44),
          .slads = bit(w, 45),
          .slts = bit(w, 46),
          .flts = bit(w, 47),
          .smpwcs = bit(w, 48),
          .rps = bit(w, 49),
          .pms = bit(w, 51)};
}

uint32_t encode(const GcmdReg& g) {
  return uint32_t(flag(g.cfi, 23) | flag(g.sirtp, 24) | flag(g.ire, 25) | flag(g.qie, 26) |
                  flag(g.wbf, 27) | flag(g.eafl, 28) | flag(g.sfl, 29) | flag(g.srtp, 30) |
                  flag(g.te, 31));
}
GcmdReg decode_gcmd(uint32_t w) {
  return {.cfi = bit(w, 23),
          .sirtp = bit(w, 24),
          .ire = bit(w, 25),
          .qie = bit(w, 26),
          .wbf = bit(w, 27),
          .eafl = bit(w, 28),
          .sfl = bit(w, 29),
          .srtp = bit(w, 30),
          .te = bit(w, 31)};
}

uint32_t encode(const GstsReg& g) {
  return uint32_t(flag(g.cfis, 23) | flag(g.irtps, 24) | flag(g.ires, 25) | flag(g.qies, 26) |
                  flag(g.wbfs, 27) | flag(g.afls, 28) | flag(g.fls, 29) | flag(g.rtps, 30) |
                  flag(g.tes, 31));
}
GstsReg decode_gsts(uint32_t w) {
  return {.cfis = bit(w, 23),
          .irtps = bit(w, 24),
          .ires = bit(w, 25),
          .qies = bit(w, 26),
          .wbfs = bit(w, 27),
          .afls = bit(w, 28),
          .fls = bit(w, 29),
          .rtps = bit(w, 30),
          .tes = bit(w, 31)};
}

uint64_t encode(const RtaddrReg& r) {
  return flag(r.smt, 10) | (r.rta & kAddr63_12);
}
RtaddrReg decode_rtaddr(uint64_t w) {
  return {.smt = bit(w, 10), .rta = w & kAddr63_12};
}

uint64_t encode(const IqaReg& r) {
  return put(r.qs, 0, 3) | flag(r.dw == QiWidth::d256, 11) | (r.iqa & kAddr63_12);
}
IqaReg decode_iqa(uint64_t w) {
  return {.qs = uint8_t(get(w, 0, 3)),
          .dw = bit(w, 11) ? QiWidth::d256 : QiWidth::d128,
          .iqa = w & kAddr63_12};
}

namespace {
constexpr unsigned iq_shift(QiWidth dw) {
  return dw == QiWidth::d256 ? 5 : 4;
}
} // namespace

uint64_t iq_pointer_fields(QiWidth dw) {
  return put(~0ull, iq_shift(dw), 19 - iq_shift(dw));
}
uint64_t encode(const IqPointer& p, QiWidth dw) {
  return put(p.index, iq_shift(dw), 19 - iq_shift(dw));
}
IqPointer decode_iq_pointer(uint64_t w, QiWidth dw) {
  return {.index = uint16_t(get(w, iq_shift(dw), 19 - iq_shift(dw)))};
}

uint32_t encode(const FstsReg& f) {
  return uint32_t(flag(f.pfo, 0) | flag(f.ppf, 1) | flag(f.iqe, 4) | flag(f.ice, 5) |
                  flag(f.ite, 6) | flag(f.pro, 7) | put(f.fri, 8, 8));
}
FstsReg decode_fsts(uint32_t w) {
  return {.pfo = bit(w, 0),
          .ppf = bit(w, 1),
          .iqe = bit(w, 4),
          .ice = bit(w, 5),
          .ite = bit(w, 6),
          .pro = bit(w, 7),
          .fri = uint8_t(get(w, 8, 8))};
}

uint32_t encode(const FectlReg& f) {
  return uint32_t(flag(f.ip, 30) | flag(f.im, 31));
}
FectlReg decode_fectl(uint32_t w) {
  return {.ip = bit(w, 30), .im = bit(w, 31)};
}

} // namespace iommuspec::vtd

// Round-trip properties for every VT-d structure in vtd/format.h, and encodings pinned
// against values computed by hand from the Linux 6.12 and QEMU headers.
#include "vtd/format.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

namespace iommuspec::vtd {
namespace {

// --- generators -----------------------------------------------------------------------------

// A value of `width` bits, biased towards the edges: 0, 1, all ones, top bit only.
rc::Gen<uint64_t> field(unsigned width) {
  const uint64_t m = width >= 64 ? ~0ull : (1ull << width) - 1;
  const uint64_t top = 1ull << (width - 1);
  return rc::gen::weightedOneOf<uint64_t>(
      {{1, rc::gen::just<uint64_t>(0)},
       {1, rc::gen::just<uint64_t>(1)},
       {1, rc::gen::just(m)},
       {1, rc::gen::just(top)},
       {6, rc::gen::map(rc::gen::arbitrary<uint64_t>(), [m](uint64_t v) { return v & m; })}});
}
// Draw a field of `width` bits as T (an integer or enum type).
template <class T>
T f(unsigned width) {
  return T(*field(width));
}
bool b() {
  return *rc::gen::arbitrary<bool>();
}
// An address with only bits hi:lo possibly set.
uint64_t addr(unsigned hi, unsigned lo) {
  return *field(hi - lo + 1) << lo;
}
// A raw word: anything, biased to all-zero and all-one.
uint64_t word() {
  return *rc::gen::weightedOneOf<uint64_t>({{1, rc::gen::just<uint64_t>(0)},
                                            {1, rc::gen::just<uint64_t>(~0ull)},
                                            {8, rc::gen::arbitrary<uint64_t>()}});
}
template <size_t N>
std::array<uint64_t, N> words() {
  std::array<uint64_t, N> w{};
  for (auto& x : w)
    x = word();
  return w;
}
template <size_t N>
std::array<uint64_t, N> masked(std::array<uint64_t, N> w, const std::array<uint64_t, N>& m) {
  for (size_t i = 0; i < N; i++)
    w[i] &= m[i];
  return w;
}

RootEntry gen_root() {
  return {.present = b(), .ctp = addr(63, 12)};
}
ContextEntry gen_context() {
  return {.present = b(),
          .fpd = b(),
          .tt = f<TranslationType>(2),
          .slptptr = addr(63, 12),
          .aw = f<uint8_t>(3),
          .avail = f<uint8_t>(4),
          .did = f<uint16_t>(16)};
}
SmRootEntry gen_sm_root() {
  return {.lower_present = b(), .lctp = addr(63, 12), .upper_present = b(), .uctp = addr(63, 12)};
}
SmContextEntry gen_sm_context() {
  return {.present = b(),
          .fpd = b(),
          .dte = b(),
          .paside = b(),
          .pre = b(),
          .pdts = f<uint8_t>(3),
          .pasid_dir_ptr = addr(63, 12),
          .rid_pasid = f<uint32_t>(20)};
}
PasidDirEntry gen_pasid_dir() {
  return {.present = b(), .fpd = b(), .pasid_table = addr(63, 12)};
}
PasidEntry gen_pasid_entry() {
  return {.present = b(),
          .fpd = b(),
          .aw = f<uint8_t>(3),
          .pgtt = f<Pgtt>(3),
          .slade = b(),
          .slptptr = addr(63, 12),
          .did = f<uint16_t>(16),
          .pwsnp = b(),
          .pgsnp = b(),
          .sre = b(),
          .flpm = f<uint8_t>(2),
          .wpe = b(),
          .eafe = b(),
          .flptptr = addr(63, 12)};
}
SsPte gen_ss_pte() {
  return {.r = b(), .w = b(), .ps = b(), .d = b(), .snp = b(), .tm = b(), .addr = addr(51, 12)};
}
FsPte gen_fs_pte() {
  return {.p = b(),
          .rw = b(),
          .us = b(),
          .pwt = b(),
          .pcd = b(),
          .a = b(),
          .d = b(),
          .ps = b(),
          .g = b(),
          .xd = b(),
          .addr = addr(51, 12)};
}
ContextCacheInv gen_cc() {
  return {.g = f<CcGranularity>(2),
          .did = f<uint16_t>(16),
          .sid = f<uint16_t>(16),
          .fm = f<uint8_t>(2)};
}
IotlbInv gen_iotlb() {
  return {.g = f<IotlbGranularity>(2),
          .dw = b(),
          .dr = b(),
          .did = f<uint16_t>(16),
          .am = f<uint8_t>(6),
          .ih = b(),
          .addr = addr(63, 12)};
}
DevTlbInv gen_dev_tlb() {
  return {.pfsid = f<uint16_t>(16),
          .mip = f<uint8_t>(5),
          .sid = f<uint16_t>(16),
          .s = b(),
          .addr = addr(63, 12)};
}
IecInv gen_iec() {
  return {.selective = b(), .im = f<uint8_t>(5), .iidx = f<uint16_t>(16)};
}
InvWait gen_wait() {
  return {.if_ = b(),
          .sw = b(),
          .fn = b(),
          .pd = b(),
          .status_data = f<uint32_t>(32),
          .status_addr = addr(63, 2)};
}
PasidCacheInv gen_pc() {
  return {.g = f<PasidCacheGranularity>(2), .did = f<uint16_t>(16), .pasid = f<uint32_t>(20)};
}
PasidIotlbInv gen_piotlb() {
  return {.g = f<PasidIotlbGranularity>(2),
          .did = f<uint16_t>(16),
          .pasid = f<uint32_t>(20),
          .am = f<uint8_t>(6),
          .ih = b(),
          .addr = addr(63, 12)};
}
PasidDevTlbInv gen_pdev_tlb() {
  return {.mip = f<uint8_t>(5),
          .pfsid = f<uint16_t>(16),
          .sid = f<uint16_t>(16),
          .pasid = f<uint32_t>(20),
          .g = b(),
          .s = b(),
          .addr = addr(63, 12)};
}
FaultRecord gen_fault() {
  return {.fi = addr(63, 12),
          .sid = f<uint16_t>(16),
          .pp = b(),
          .reason = f<uint8_t>(8),
          .pasid = f<uint32_t>(20),
          .type = f<FaultType>(1),
          .f = b()};
}
CapReg gen_cap() {
  return {.nd = f<uint8_t>(3),
          .afl = b(),
          .rwbf = b(),
          .plmr = b(),
          .phmr = b(),
          .cm = b(),
          .sagaw = f<uint8_t>(5),
          .mgaw = f<uint8_t>(6),
          .zlr = b(),
          .isoch = b(),
          .fro = f<uint16_t>(10),
          .sllps = f<uint8_t>(4),
          .psi = b(),
          .nfr = f<uint8_t>(8),
          .mamv = f<uint8_t>(6),
          .dwd = b(),
          .drd = b(),
          .fl1gp = b(),
          .pi = b(),
          .fl5lp = b(),
          .ecmds = b(),
          .esirtps = b(),
          .esrtps = b()};
}
EcapReg gen_ecap() {
  return {.c = b(),
          .qi = b(),
          .dt = b(),
          .ir = b(),
          .eim = b(),
          .pt = b(),
          .sc = b(),
          .iro = f<uint16_t>(10),
          .mhmv = f<uint8_t>(4),
          .mts = b(),
          .nest = b(),
          .dis = b(),
          .pasid_old = b(),
          .prs = b(),
          .ers = b(),
          .srs = b(),
          .nwfs = b(),
          .eafs = b(),
          .pss = f<uint8_t>(5),
          .pasid = b(),
          .dit = b(),
          .pds = b(),
          .smts = b(),
          .vcs = b(),
          .slads = b(),
          .slts = b(),
          .flts = b(),
          .smpwcs = b(),
          .rps = b(),
          .pms = b()};
}
GcmdReg gen_gcmd() {
  return {.cfi = b(),
          .sirtp = b(),
          .ire = b(),
          .qie = b(),
          .wbf = b(),
          .eafl = b(),
          .sfl = b(),
          .srtp = b(),
          .te = b()};
}
GstsReg gen_gsts() {
  return {.cfis = b(),
          .irtps = b(),
          .ires = b(),
          .qies = b(),
          .wbfs = b(),
          .afls = b(),
          .fls = b(),
          .rtps = b(),
          .tes = b()};
}
FstsReg gen_fsts() {
  return {
      .pfo = b(), .ppf = b(), .iqe = b(), .ice = b(), .ite = b(), .pro = b(), .fri = f<uint8_t>(8)};
}

// --- decode(encode(x)) == x ------------------------------------------------------------------

RC_GTEST_PROP(VtdFormatRoundTrip, RootEntry, ()) {
  const auto x = gen_root();
  RC_ASSERT(decode_root_entry(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, ContextEntry, ()) {
  const auto x = gen_context();
  RC_ASSERT(decode_context_entry(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, SmRootEntry, ()) {
  const auto x = gen_sm_root();
  RC_ASSERT(decode_sm_root_entry(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, SmContextEntry, ()) {
  const auto x = gen_sm_context();
  RC_ASSERT(decode_sm_context_entry(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, PasidDirEntry, ()) {
  const auto x = gen_pasid_dir();
  RC_ASSERT(decode_pasid_dir_entry(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, PasidEntry, ()) {
  const auto x = gen_pasid_entry();
  RC_ASSERT(decode_pasid_entry(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, SsPte, ()) {
  const auto x = gen_ss_pte();
  RC_ASSERT(decode_ss_pte(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, FsPte, ()) {
  const auto x = gen_fs_pte();
  RC_ASSERT(decode_fs_pte(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, ContextCacheInv, ()) {
  const auto x = gen_cc();
  RC_ASSERT(decode_context_cache_inv(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, IotlbInv, ()) {
  const auto x = gen_iotlb();
  RC_ASSERT(decode_iotlb_inv(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, DevTlbInv, ()) {
  const auto x = gen_dev_tlb();
  RC_ASSERT(decode_dev_tlb_inv(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, IecInv, ()) {
  const auto x = gen_iec();
  RC_ASSERT(decode_iec_inv(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, InvWait, ()) {
  const auto x = gen_wait();
  RC_ASSERT(decode_inv_wait(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, PasidCacheInv, ()) {
  const auto x = gen_pc();
  RC_ASSERT(decode_pasid_cache_inv(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, PasidIotlbInv, ()) {
  const auto x = gen_piotlb();
  RC_ASSERT(decode_pasid_iotlb_inv(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, PasidDevTlbInv, ()) {
  const auto x = gen_pdev_tlb();
  RC_ASSERT(decode_pasid_dev_tlb_inv(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, QiDescriptorVariant, ()) {
  QiDescriptor x;
  switch (*rc::gen::inRange(0, 8)) {
  case 0:
    x = gen_cc();
    break;
  case 1:
    x = gen_iotlb();
    break;
  case 2:
    x = gen_dev_tlb();
    break;
  case 3:
    x = gen_iec();
    break;
  case 4:
    x = gen_wait();
    break;
  case 5:
    x = gen_pc();
    break;
  case 6:
    x = gen_piotlb();
    break;
  default:
    x = gen_pdev_tlb();
    break;
  }
  const QiDesc d = encode(x);
  RC_ASSERT(decode_qi_descriptor(d) == x);
  // The 128-bit form carries the same descriptor.
  RC_ASSERT(from_128(to_128(d)) == d);
}
RC_GTEST_PROP(VtdFormatRoundTrip, FaultRecord, ()) {
  const auto x = gen_fault();
  RC_ASSERT(decode_fault_record(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, CapReg, ()) {
  const auto x = gen_cap();
  RC_ASSERT(decode_cap_reg(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, EcapReg, ()) {
  const auto x = gen_ecap();
  RC_ASSERT(decode_ecap_reg(encode(x)) == x);
}
RC_GTEST_PROP(VtdFormatRoundTrip, GcmdGsts, ()) {
  const auto g = gen_gcmd();
  RC_ASSERT(decode_gcmd(encode(g)) == g);
  const auto s = gen_gsts();
  RC_ASSERT(decode_gsts(encode(s)) == s);
}
RC_GTEST_PROP(VtdFormatRoundTrip, RtaddrIqa, ()) {
  const RtaddrReg r{.smt = b(), .rta = addr(63, 12)};
  RC_ASSERT(decode_rtaddr(encode(r)) == r);
  const IqaReg q{.qs = f<uint8_t>(3), .dw = f<QiWidth>(1), .iqa = addr(63, 12)};
  RC_ASSERT(decode_iqa(encode(q)) == q);
}
RC_GTEST_PROP(VtdFormatRoundTrip, IqPointer, ()) {
  const auto dw = f<QiWidth>(1);
  const IqPointer p{.index = f<uint16_t>(dw == QiWidth::d256 ? 14 : 15)};
  RC_ASSERT(decode_iq_pointer(encode(p, dw), dw) == p);
}
RC_GTEST_PROP(VtdFormatRoundTrip, FstsFectl, ()) {
  const auto s = gen_fsts();
  RC_ASSERT(decode_fsts(encode(s)) == s);
  const FectlReg c{.ip = b(), .im = b()};
  RC_ASSERT(decode_fectl(encode(c)) == c);
}

// --- encode(decode(w)) == w for words whose unrepresented bits are zero, and decoders
// ignore unrepresented bits ---------------------------------------------------------------------

template <size_t N, class Decode>
void check_words(const std::array<uint64_t, N>& mask, Decode decode) {
  const auto w = words<N>();
  const auto m = masked(w, mask);
  RC_ASSERT(encode(decode(m)) == m);
  RC_ASSERT(decode(w) == decode(m));
}
template <class U, class Decode>
void check_word(U mask, Decode decode) {
  const auto w = U(word());
  const U m = w & mask;
  RC_ASSERT(encode(decode(m)) == m);
  RC_ASSERT(decode(w) == decode(m));
}
// For a descriptor: force the type, then as above; the typed decoder must accept it.
template <class Decode>
void check_desc(QiType t, const QiDesc& mask, Decode decode) {
  auto w = words<4>();
  const auto tv = uint64_t(t);
  w[0] = (w[0] & ~0xe0full) | (tv & 0xf) | ((tv >> 4) << 9);
  const auto m = masked(w, mask);
  const auto dm = decode(m);
  RC_ASSERT(dm.has_value());
  RC_ASSERT(encode(*dm) == m);
  RC_ASSERT(decode(w) == dm);
  RC_ASSERT(decode_qi_descriptor(m).has_value());
}

RC_GTEST_PROP(VtdFormatWords, Entries, ()) {
  check_words(kRootEntryFields, decode_root_entry);
  check_words(kContextEntryFields, decode_context_entry);
  check_words(kSmRootEntryFields, decode_sm_root_entry);
  check_words(kSmContextEntryFields, decode_sm_context_entry);
  check_word(kPasidDirEntryFields, decode_pasid_dir_entry);
  check_words(kPasidEntryFields, decode_pasid_entry);
}
RC_GTEST_PROP(VtdFormatWords, Ptes, ()) {
  check_word(kSsPteFields, decode_ss_pte);
  check_word(kFsPteFields, decode_fs_pte);
}
RC_GTEST_PROP(VtdFormatWords, Descriptors, ()) {
  check_desc(QiType::context_cache, kContextCacheInvFields, decode_context_cache_inv);
  check_desc(QiType::iotlb, kIotlbInvFields, decode_iotlb_inv);
  check_desc(QiType::dev_tlb, kDevTlbInvFields, decode_dev_tlb_inv);
  check_desc(QiType::iec, kIecInvFields, decode_iec_inv);
  check_desc(QiType::wait, kInvWaitFields, decode_inv_wait);
  check_desc(QiType::pasid_cache, kPasidCacheInvFields, decode_pasid_cache_inv);
  check_desc(QiType::pasid_iotlb, kPasidIotlbInvFields, decode_pasid_iotlb_inv);
  check_desc(QiType::pasid_dev_tlb, kPasidDevTlbInvFields, decode_pasid_dev_tlb_inv);
}
RC_GTEST_PROP(VtdFormatWords, DescriptorTypeMismatch, ()) {
  // A typed decoder refuses any other type.
  auto w = words<4>();
  const auto t = uint8_t(*rc::gen::inRange(0, 128));
  w[0] = (w[0] & ~0xe0full) | (t & 0xf) | (uint64_t(t >> 4) << 9);
  RC_ASSERT(qi_type(w[0]) == t);
  RC_ASSERT(decode_iotlb_inv(w).has_value() == (t == uint8_t(QiType::iotlb)));
  RC_ASSERT(decode_inv_wait(w).has_value() == (t == uint8_t(QiType::wait)));
  RC_ASSERT(decode_qi_descriptor(w).has_value() == (t >= 1 && t <= 8));
}
RC_GTEST_PROP(VtdFormatWords, FaultAndRegisters, ()) {
  check_words(kFaultRecordFields, decode_fault_record);
  check_word(kCapRegFields, decode_cap_reg);
  check_word(kEcapRegFields, decode_ecap_reg);
  check_word(kGcmdRegFields, decode_gcmd);
  check_word(kGstsRegFields, decode_gsts);
  check_word(kRtaddrRegFields, decode_rtaddr);
  check_word(kIqaRegFields, decode_iqa);
  check_word(kFstsRegFields, decode_fsts);
  check_word(kFectlRegFields, decode_fectl);
  const auto dw = f<QiWidth>(1);
  const uint64_t w = word();
  const uint64_t m = w & iq_pointer_fields(dw);
  RC_ASSERT(encode(decode_iq_pointer(m, dw), dw) == m);
  RC_ASSERT(decode_iq_pointer(w, dw) == decode_iq_pointer(m, dw));
}

// The published masks are exactly the bits the encoders can set.
TEST(VtdFormatMasks, MasksMatchEncoders) {
  const auto ones2 = Words2{~0ull, ~0ull};
  const auto ones4 = Words4{~0ull, ~0ull, ~0ull, ~0ull};
  Words8 ones8;
  ones8.fill(~0ull);
  EXPECT_EQ(encode(decode_root_entry(ones2)), kRootEntryFields);
  EXPECT_EQ(encode(decode_context_entry(ones2)), kContextEntryFields);
  EXPECT_EQ(encode(decode_sm_root_entry(ones2)), kSmRootEntryFields);
  EXPECT_EQ(encode(decode_sm_context_entry(ones4)), kSmContextEntryFields);
  EXPECT_EQ(encode(decode_pasid_dir_entry(~0ull)), kPasidDirEntryFields);
  EXPECT_EQ(encode(decode_pasid_entry(ones8)), kPasidEntryFields);
  EXPECT_EQ(encode(decode_ss_pte(~0ull)), kSsPteFields);
  EXPECT_EQ(encode(decode_fs_pte(~0ull)), kFsPteFields);
  EXPECT_EQ(encode(decode_fault_record(ones2)), kFaultRecordFields);
  EXPECT_EQ(encode(decode_cap_reg(~0ull)), kCapRegFields);
  EXPECT_EQ(encode(decode_ecap_reg(~0ull)), kEcapRegFields);
  EXPECT_EQ(encode(decode_gcmd(~0u)), kGcmdRegFields);
  EXPECT_EQ(encode(decode_gsts(~0u)), kGstsRegFields);
  EXPECT_EQ(encode(decode_rtaddr(~0ull)), kRtaddrRegFields);
  EXPECT_EQ(encode(decode_iqa(~0ull)), kIqaRegFields);
  EXPECT_EQ(encode(decode_fsts(~0u)), kFstsRegFields);
  EXPECT_EQ(encode(decode_fectl(~0u)), kFectlRegFields);
  EXPECT_EQ(iq_pointer_fields(QiWidth::d128), 0x7fff0ull); // Q:VTD_IQH_QH_MASK
  EXPECT_EQ(iq_pointer_fields(QiWidth::d256), 0x7ffe0ull);
  // Descriptors: all ones in every field, with the type fixed; the mask covers all seven
  // type bits.
  const auto desc_mask = [&](QiType t, auto decode) {
    auto w = ones4;
    const auto tv = uint64_t(t);
    w[0] = (w[0] & ~0xe0full) | (tv & 0xf) | ((tv >> 4) << 9);
    auto e = encode(*decode(w));
    e[0] |= 0xe0f;
    return e;
  };
  EXPECT_EQ(desc_mask(QiType::context_cache, decode_context_cache_inv), kContextCacheInvFields);
  EXPECT_EQ(desc_mask(QiType::iotlb, decode_iotlb_inv), kIotlbInvFields);
  EXPECT_EQ(desc_mask(QiType::dev_tlb, decode_dev_tlb_inv), kDevTlbInvFields);
  EXPECT_EQ(desc_mask(QiType::iec, decode_iec_inv), kIecInvFields);
  EXPECT_EQ(desc_mask(QiType::wait, decode_inv_wait), kInvWaitFields);
  EXPECT_EQ(desc_mask(QiType::pasid_cache, decode_pasid_cache_inv), kPasidCacheInvFields);
  EXPECT_EQ(desc_mask(QiType::pasid_iotlb, decode_pasid_iotlb_inv), kPasidIotlbInvFields);
  EXPECT_EQ(desc_mask(QiType::pasid_dev_tlb, decode_pasid_dev_tlb_inv), kPasidDevTlbInvFields);
}

// The masks QEMU uses for reserved bits are the complements of ours where both sources agree.
TEST(VtdFormatMasks, QemuReservedMasksAgree) {
  EXPECT_EQ(~kIotlbInvFields[0], 0xffffffff0000f100ull);        // Q:VTD_INV_DESC_IOTLB_RSVD_LO
  EXPECT_EQ(~kIotlbInvFields[1], 0xf80ull);                     // Q:VTD_INV_DESC_IOTLB_RSVD_HI
  EXPECT_EQ(~kContextCacheInvFields[0], 0xfffc00000000f1c0ull); // Q:VTD_INV_DESC_CC_RSVD
  EXPECT_EQ(~kIecInvFields[0], 0xffff000007fff1e0ull);          // Q:VTD_INV_DESC_IEC_RSVD
  EXPECT_EQ(~kPasidIotlbInvFields[0], 0xfff000000000f1c0ull);   // Q:VTD_INV_DESC_PIOTLB_RSVD_VAL0
  EXPECT_EQ(~kPasidIotlbInvFields[1], 0xf80ull);                // Q:VTD_INV_DESC_PIOTLB_RSVD_VAL1
  EXPECT_EQ(~kPasidDevTlbInvFields[1], 0x7feull); // Q:VTD_INV_DESC_PASID_DEVICE_IOTLB_RSVD_VAL1
  EXPECT_EQ(~kInvWaitFields[1], 3ull);            // Q:VTD_INV_DESC_WAIT_RSVD_HI
  // Where they disagree (see format.h): QEMU reserves what Linux uses.
  EXPECT_EQ(~kInvWaitFields[0] & 0xffffffffull, 0xfffff100ull); // QEMU: 0xfffff180 (PD)
  EXPECT_EQ(~kDevTlbInvFields[0], 0x000f0000ffe001f0ull);       // QEMU: 0xffff0000ffe0f1f0 (PFSID)
  EXPECT_EQ(~kPasidDevTlbInvFields[0], 0ull);                   // QEMU: 0xfff000000000f000 (PFSID)
}

// --- encodings pinned against the headers
// ---------------------------------------------------------

TEST(VtdFormatPinned, QiTypeCodes) {
  // iommu.h:387-394
  EXPECT_EQ(encode(ContextCacheInv{})[0] & 0xf, 0x1u);
  EXPECT_EQ(encode(IotlbInv{})[0] & 0xf, 0x2u);
  EXPECT_EQ(encode(DevTlbInv{})[0] & 0xf, 0x3u);
  EXPECT_EQ(encode(IecInv{})[0] & 0xf, 0x4u);
  EXPECT_EQ(encode(InvWait{})[0] & 0xf, 0x5u);
  EXPECT_EQ(encode(PasidIotlbInv{})[0] & 0xf, 0x6u);
  EXPECT_EQ(encode(PasidCacheInv{})[0] & 0xf, 0x7u);
  EXPECT_EQ(encode(PasidDevTlbInv{})[0] & 0xf, 0x8u);
  // Q:VTD_INV_DESC_TYPE folds bits 11:9 in as type[6:4].
  EXPECT_EQ(qi_type(0x205), 0x15u);
}

TEST(VtdFormatPinned, IotlbGranularityBits) {
  // QI_IOTLB_GRAN(DMA_TLB_*_FLUSH) = (n << 60) >> 56 (iommu.h:248-250, :410).
  EXPECT_EQ(encode(IotlbInv{.g = IotlbGranularity::global})[0], 0x12u);
  EXPECT_EQ(encode(IotlbInv{.g = IotlbGranularity::domain})[0], 0x22u);
  EXPECT_EQ(encode(IotlbInv{.g = IotlbGranularity::page})[0], 0x32u);
  // qi_desc_iotlb(did 5, addr 0x12345000 | IH, size_order 3, PSI, DW and DR) (iommu.h:1103-1122).
  const QiDesc d = encode(IotlbInv{.g = IotlbGranularity::page,
                                   .dw = true,
                                   .dr = true,
                                   .did = 5,
                                   .am = 3,
                                   .ih = true,
                                   .addr = 0x12345000});
  EXPECT_EQ(d, (QiDesc{0x500f2, 0x12345043, 0, 0}));
}

TEST(VtdFormatPinned, ContextCacheInv) {
  // QI_CC_FM(1) | QI_CC_SID(0x108) | QI_CC_DID(7) | QI_CC_GRAN(DMA_CCMD_DEVICE_INVL) | type
  // (iommu.h:305, :415-418).
  const QiDesc d =
      encode(ContextCacheInv{.g = CcGranularity::device, .did = 7, .sid = 0x108, .fm = 1});
  EXPECT_EQ(d[0], 0x0001'0108'0007'0031ull);
  EXPECT_EQ(encode(ContextCacheInv{.g = CcGranularity::global})[0], 0x11u); // Q:..._CC_GLOBAL
}

TEST(VtdFormatPinned, PgttValues) {
  // pasid.h:49-52 at bits 8:6; Q:VTD_SM_PASID_ENTRY_FLT/SLT/NESTED/PT.
  EXPECT_EQ(encode(PasidEntry{.pgtt = Pgtt::first_stage})[0], 1ull << 6);
  EXPECT_EQ(encode(PasidEntry{.pgtt = Pgtt::second_stage})[0], 2ull << 6);
  EXPECT_EQ(encode(PasidEntry{.pgtt = Pgtt::nested})[0], 3ull << 6);
  EXPECT_EQ(encode(PasidEntry{.pgtt = Pgtt::pass_through})[0], 4ull << 6);
}

TEST(VtdFormatPinned, PasidEntryNested) {
  // intel_pasid_setup_nested (pasid.c:665-689): FLPM 5-level, FLPTR, SRE, WPE, EAFE, PGSNP,
  // SLPTR, DID, AW, page snoop, SLADE, PGTT nested, present.
  const PasidEntry e{.present = true,
                     .aw = 2,
                     .pgtt = Pgtt::nested,
                     .slade = true,
                     .slptptr = 0x1234'5000,
                     .did = 0x42,
                     .pwsnp = true,
                     .pgsnp = true,
                     .sre = true,
                     .flpm = 1,
                     .wpe = true,
                     .eafe = true,
                     .flptptr = 0xabcd'e000};
  const Words8 w = encode(e);
  EXPECT_EQ(w[0], 0x1234'5000ull | (1u << 9) | (3u << 6) | (2u << 2) | 1u);
  EXPECT_EQ(w[1], 0x42ull | (1u << 23) | (1ull << 24));
  EXPECT_EQ(w[2], 0xabcd'e000ull | (1u << 7) | (1u << 4) | (1u << 2) | 1u);
  EXPECT_EQ(fs_levels(e.flpm), 5u); // iommu.c:816
  EXPECT_EQ(fs_levels(0), 4u);
  EXPECT_EQ(fs_levels(2), std::nullopt);
}

TEST(VtdFormatPinned, LegacyContextEntry) {
  // context_set_* (iommu.h:959-1011): present, pass-through, AW 2, DID 0x1234.
  const ContextEntry e{.present = true,
                       .tt = TranslationType::pass_through,
                       .slptptr = 0xabc000,
                       .aw = 2,
                       .did = 0x1234};
  EXPECT_EQ(encode(e), (Words2{0xabc009, 0x123402}));
  EXPECT_EQ(aw_levels(e.aw), 4u); // iommu.h:895-898
  EXPECT_EQ(aw_width(e.aw), 48u); // iommu.h:900-903
  EXPECT_EQ(encode(RootEntry{.present = true, .ctp = 0x5000}), (Words2{0x5001, 0}));
}

TEST(VtdFormatPinned, ScalableContextEntry) {
  // intel_pasid_setup_sm_context (pasid.c:775-784): table | context_pdts(2), RID_PASID 0,
  // DTE, PASIDE, FPD clear, present.
  const SmContextEntry e{
      .present = true, .dte = true, .paside = true, .pdts = 2, .pasid_dir_ptr = 0x5000};
  EXPECT_EQ(encode(e), (Words4{0x540d, 0, 0, 0}));
  EXPECT_EQ(pasid_dir_entries(e.pdts), 512u); // pasid.h:23
  EXPECT_EQ(encode(SmContextEntry{.rid_pasid = 0xfffff})[1], 0xfffffull);
  // iommu_context_addr: devfn >= 0x80 uses the upper half (iommu.c:506-512).
  EXPECT_EQ(encode(SmRootEntry{
                .lower_present = true, .lctp = 0x1000, .upper_present = true, .uctp = 0x2000}),
            (Words2{0x1001, 0x2001}));
  EXPECT_EQ(pasid_dir_index(0x12345), 0x48du);
  EXPECT_EQ(pasid_table_index(0x12345), 0x05u);
  EXPECT_EQ(encode(PasidDirEntry{.present = true, .fpd = true, .pasid_table = 0x7000}), 0x7003ull);
}

TEST(VtdFormatPinned, InvWait) {
  // qi_submit_sync's wait descriptor: QI_IWD_STATUS_DATA(QI_DONE) | QI_IWD_STATUS_WRITE |
  // QI_IWD_TYPE, optionally QI_IWD_PRQ_DRAIN (dmar.c:1437-1441; iommu.h:383, :402-405).
  const InvWait w{.sw = true, .status_data = 2, .status_addr = 0x1234'5678'9abc};
  EXPECT_EQ(encode(w), (QiDesc{0x0000'0002'0000'0025ull, 0x1234'5678'9abc, 0, 0}));
  InvWait pd = w;
  pd.pd = true;
  EXPECT_EQ(encode(pd)[0], 0x0000'0002'0000'00a5ull);
  EXPECT_EQ(encode(InvWait{.if_ = true, .fn = true})[0], 0x55u); // Q:VTD_INV_DESC_WAIT_IF/FN
}

TEST(VtdFormatPinned, PasidCacheAndIotlb) {
  // QI_PC_PASID | QI_PC_DID | QI_PC_GRAN(QI_PC_PASID_SEL) | QI_PC_TYPE (iommu.h:428-435).
  EXPECT_EQ(
      encode(PasidCacheInv{.g = PasidCacheGranularity::pasid, .did = 0x42, .pasid = 0x12345})[0],
      0x0001'2345'0042'0017ull);
  // qi_desc_piotlb, npages == -1 (iommu.h:1147-1152) and a 4-page PSI (:1153-1166).
  EXPECT_EQ(encode(PasidIotlbInv{
                .g = PasidIotlbGranularity::all_in_pasid, .did = 0x42, .pasid = 0x12345}),
            (QiDesc{0x0001'2345'0042'0026ull, 0, 0, 0}));
  EXPECT_EQ(encode(PasidIotlbInv{.g = PasidIotlbGranularity::page_in_pasid,
                                 .did = 1,
                                 .pasid = 1,
                                 .am = 2,
                                 .ih = true,
                                 .addr = 0x7000'0000}),
            (QiDesc{0x0000'0001'0001'0036ull, 0x7000'0042ull, 0, 0}));
}

TEST(VtdFormatPinned, DeviceTlbInv) {
  // qi_desc_dev_iotlb(sid 0x208, pfsid 0xabcd, qdep 3, addr 0x40000, mask 2) (iommu.h:1124-1141).
  const QiDesc d =
      encode(DevTlbInv{.pfsid = 0xabcd, .mip = 3, .sid = 0x208, .s = true, .addr = 0x41000});
  EXPECT_EQ(d, (QiDesc{0xabc0'0208'0003'd003ull, 0x41001, 0, 0}));
  EXPECT_EQ(dev_tlb_range(0x41000, true), (ByteRange{0x40000, 0x43fff}));
  EXPECT_EQ(dev_tlb_range(0x41000, false), (ByteRange{0x41000, 0x41fff}));
  EXPECT_EQ(dev_tlb_addr_bits(0x40000, 2), 0x41000u);
  // qi_desc_dev_iotlb_pasid(sid 0x100, pfsid 0x1234, pasid 5, qdep 0, addr 0x10000, order 1)
  // (iommu.h:1170-1219): 8K, so bit 12 is the clear size bit.
  EXPECT_EQ(dev_tlb_addr_bits(0x10000, 1), 0x10000u);
  const QiDesc p =
      encode(PasidDevTlbInv{.pfsid = 0x1234, .sid = 0x100, .pasid = 5, .s = true, .addr = 0x10000});
  EXPECT_EQ(p, (QiDesc{0x1230'0005'0100'4008ull, 0x10800, 0, 0}));
  EXPECT_EQ(dev_tlb_range(0x10000, true), (ByteRange{0x10000, 0x11fff}));
  // The widest range: 63:12 all ones but bit 63 (iommu.h:1180-1187).
  EXPECT_EQ(dev_tlb_addr_bits(0, 52), 0x7fff'ffff'ffff'f000ull);
  EXPECT_EQ(dev_tlb_range(0x7fff'ffff'ffff'f000ull, true), (ByteRange{0, ~0ull}));
  EXPECT_EQ(encode(PasidDevTlbInv{.g = true})[1], 1u); // Q:..._PASID_DEVICE_IOTLB_GLOBAL
}

RC_GTEST_PROP(VtdFormatHelpers, DevTlbRangeCoversRequest, ()) {
  const auto order = unsigned(*rc::gen::inRange(1, 52));
  const uint64_t size = 1ull << (order + 12);
  const uint64_t a = addr(63, 12) & ~(size - 1);
  const ByteRange r = dev_tlb_range(dev_tlb_addr_bits(a, order), true);
  RC_ASSERT(r == (ByteRange{a, a + size - 1}));
}

TEST(VtdFormatPinned, FaultRecord) {
  // dmar_fault: dword +12 = F | T | PASID << 8 | reason, dword +8 = PP | SID
  // (dmar.c:1990-2008; iommu.h:347-354).
  const FaultRecord r{.fi = 0xdead'b000,
                      .sid = 0x0310,
                      .pp = true,
                      .reason = 0x05,
                      .pasid = 0x12345,
                      .type = FaultType::read,
                      .f = true};
  EXPECT_EQ(encode(r), (Words2{0xdead'b000ull, 0xc123'4505'8000'0310ull}));
  EXPECT_EQ(FaultReason(r.reason), FaultReason::no_write);
  // Q:VTD_FRCD_FR / Q:VTD_FRCD_T / Q:VTD_FRCD_F in the high word.
  EXPECT_EQ(encode(FaultRecord{.reason = 0xff, .type = FaultType::read, .f = true})[1],
            (1ull << 63) | (1ull << 62) | (0xffull << 32));
  EXPECT_EQ(fault_class(0x05), FaultClass::dma_legacy);
  EXPECT_EQ(fault_class(0x22), FaultClass::interrupt);
  EXPECT_EQ(fault_class(0x59), FaultClass::dma_scalable);
  EXPECT_EQ(fault_class(uint8_t(FaultReason::interrupt_addr)), FaultClass::unknown);
  EXPECT_EQ(uint8_t(FaultReason::sm_pasid_entry_not_present), 0x59u); // Q:VTD_FR_PASID_ENTRY_P
  EXPECT_EQ(uint8_t(FaultReason::sm_fs_non_canonical), 0x80u);        // Q:VTD_FR_FS_NON_CANONICAL
}

TEST(VtdFormatPinned, CapEcapAsQemuBuildsThem) {
  // QEMU's CAP: FRO 0x220, NFR 0, ND for 16-bit DIDs, MAMV 18, PSI, SLLPS 2M|1G, MGAW 48,
  // SAGAW 48-bit (Q:VTD_CAP_*).
  const uint64_t cap = (0x220ull << 20) | 6 | (18ull << 48) | (1ull << 39) | (3ull << 34) |
                       (47ull << 16) | (0x4ull << 8) | (1ull << 56);
  const CapReg c = decode_cap_reg(cap);
  EXPECT_EQ(cap_num_domains(c), 65536u);
  EXPECT_EQ(cap_fault_reg_offset(c), 0x220u);
  EXPECT_EQ(cap_num_fault_regs(c), 1u);
  EXPECT_EQ(cap_mgaw_bits(c), 48u);
  EXPECT_EQ(c.mamv, 18u);
  EXPECT_TRUE(c.psi);
  EXPECT_EQ(c.sagaw, 0x4u);
  EXPECT_TRUE(c.fl1gp);
  EXPECT_EQ(encode(c), cap);
  EXPECT_TRUE(ss_large_page_allowed(c, 2));
  EXPECT_TRUE(ss_large_page_allowed(c, 3));
  EXPECT_FALSE(ss_large_page_allowed(c, 4));
  EXPECT_FALSE(ss_large_page_allowed(c, 1));
  EXPECT_TRUE(fs_large_page_allowed(c, 2));
  EXPECT_TRUE(fs_large_page_allowed(c, 3));
  EXPECT_FALSE(fs_large_page_allowed(CapReg{}, 3));
  EXPECT_FALSE(fs_large_page_allowed(c, 4));
  // QEMU's ECAP: IRO for IOTLB registers at 0xf0, QI, DT, IR, EIM, PT, SC, MHMV 15, SRS,
  // PSS 19, PASID, SMTS, SLTS, FLTS.
  const uint64_t ecap = (0xf0ull << 4) | 0x2 | 0x4 | 0x8 | 0x10 | 0x40 | 0x80 | (15ull << 20) |
                        (1ull << 31) | (19ull << 35) | (1ull << 40) | (1ull << 43) | (1ull << 46) |
                        (1ull << 47);
  const EcapReg e = decode_ecap_reg(ecap);
  EXPECT_EQ(e.iro * 16u, 0xf0u);
  EXPECT_EQ(e.pss, 19u);
  EXPECT_EQ(e.mhmv, 15u);
  EXPECT_TRUE(e.qi && e.dt && e.ir && e.eim && e.pt && e.sc && e.srs && e.pasid && e.smts &&
              e.slts && e.flts);
  EXPECT_FALSE(e.c || e.nest || e.prs);
  EXPECT_EQ(encode(e), ecap);
  EXPECT_EQ(encode(EcapReg{.vcs = true}), 1ull << 44); // cap_audit.h:41
}

TEST(VtdFormatPinned, Registers) {
  EXPECT_EQ(encode(GcmdReg{.te = true}), 0x8000'0000u);              // iommu.h:277
  EXPECT_EQ(encode(GcmdReg{.qie = true}), 1u << 26);                 // iommu.h:282
  EXPECT_EQ(encode(GcmdReg{.sirtp = true}), 1u << 24);               // iommu.h:283
  EXPECT_EQ(encode(GstsReg{.ires = true}), 1u << 25);                // iommu.h:295
  EXPECT_EQ(encode(GstsReg{.cfis = true}), 1u << 23);                // iommu.h:296
  EXPECT_EQ(encode(RtaddrReg{.smt = true, .rta = 0x1000}), 0x1400u); // iommu.h:299
  // dmar_enable_qi in scalable mode: base | DW | QS=1, a 256-entry queue (dmar.c:1663-1674).
  const IqaReg q = decode_iqa(0x8000'0000ull | (1u << 11) | 1u);
  EXPECT_EQ(q.dw, QiWidth::d256);
  EXPECT_EQ(q.qs, 1u);
  EXPECT_EQ(iq_entries(q), 256u); // iommu.h:378 QI_LENGTH
  EXPECT_EQ(iq_entries(IqaReg{}), 256u);
  // IQT written as free_head << qi_shift (dmar.c:1455; iommu.h:475).
  EXPECT_EQ(encode(IqPointer{.index = 3}, QiWidth::d256), 0x60u);
  EXPECT_EQ(encode(IqPointer{.index = 3}, QiWidth::d128), 0x30u);
  EXPECT_EQ(decode_iq_pointer(0x60, QiWidth::d256).index, 3u);
  EXPECT_EQ(encode(FstsReg{.ppf = true, .iqe = true, .fri = 3}), 0x312u); // iommu.h:338-344
  EXPECT_EQ(encode(FstsReg{.ite = true, .pro = true}), 0xc0u);
  EXPECT_EQ(encode(FectlReg{.im = true}), 0x8000'0000u); // iommu.h:335
}

TEST(VtdFormatPinned, PageTableEntries) {
  // __domain_mapping: phys | READ | WRITE | LARGE_PAGE, SNP (iommu.h:43-46).
  EXPECT_EQ(encode(SsPte{.r = true, .w = true, .ps = true, .addr = 0x4000'0000}), 0x4000'0083u);
  EXPECT_EQ(encode(SsPte{.snp = true}), 0x800u);
  EXPECT_EQ(encode(SsPte{.d = true}), 0x200u);      // iommu.h:53
  EXPECT_EQ(encode(SsPte{.tm = true}), 1ull << 62); // Q:VTD_SL_TM
  EXPECT_FALSE(ss_pte_present(SsPte{.ps = true, .snp = true}));
  // First-level attributes (iommu.c:1829-1834): R/W, present, U/S, A, D.
  const FsPte fs = decode_fs_pte(0x1234'5067);
  EXPECT_TRUE(fs.p && fs.rw && fs.us && fs.a && fs.d);
  EXPECT_FALSE(fs.pwt || fs.pcd || fs.ps || fs.g || fs.xd);
  EXPECT_EQ(fs.addr, 0x1234'5000u);
  EXPECT_EQ(encode(FsPte{.xd = true}), 1ull << 63); // x86 pgtable:30
  EXPECT_EQ(encode(FsPte{.g = true}), 0x100u);      // x86 pgtable:19
  // Indices per level (iommu.h:910-918).
  const uint64_t iova = (1ull << 48) * 2 + (1ull << 39) * 3 + (1ull << 30) * 5 + (1ull << 21) * 7 +
                        (1ull << 12) * 9 + 0x123;
  EXPECT_EQ(pt_index(iova, 5), 2u);
  EXPECT_EQ(pt_index(iova, 4), 3u);
  EXPECT_EQ(pt_index(iova, 3), 5u);
  EXPECT_EQ(pt_index(iova, 2), 7u);
  EXPECT_EQ(pt_index(iova, 1), 9u);
  EXPECT_EQ(level_page_size(2), 2ull << 20);
  EXPECT_EQ(level_page_size(3), 1ull << 30);
}

} // namespace
} // namespace iommuspec::vtd

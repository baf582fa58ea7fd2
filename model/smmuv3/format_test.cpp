// Tests for the SMMUv3 format layer: RapidCheck round trips for every structure
// (decode(encode(x)) == x over values within each field's width, and encode(decode(w)) == w
// over words whose reserved bits are zero), and encodings pinned by hand against the
// sources' masks (arm-smmu-v3.h, io-pgtable-arm.c, pgtable-hwdef.h, QEMU smmuv3-internal.h).
// The generators below restate each field's width from format.h's comments, independently
// of the field tables in format.cpp.
#include "smmuv3/format.h"

#include <cstddef>
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <utility>

namespace iommuspec::smmuv3 {
namespace {

// ---- Generators ------------------------------------------------------------------------------

constexpr uint64_t ones(unsigned width) {
  return width >= 64 ? ~uint64_t(0) : (uint64_t(1) << width) - 1;
}

// A value of `width` bits, with its edges (0, 1, top bit, all ones) weighted in.
rc::Gen<uint64_t> bits(unsigned width) {
  if (width == 0) return rc::gen::just(uint64_t(0));
  const uint64_t max = ones(width);
  return rc::gen::weightedOneOf<uint64_t>({
      {1, rc::gen::just(uint64_t(0))},
      {1, rc::gen::just(max)},
      {1, rc::gen::just(uint64_t(1))},
      {1, rc::gen::just(uint64_t(1) << (width - 1))},
      {3, rc::gen::map(rc::gen::arbitrary<uint64_t>(), [max](uint64_t v) { return v & max; })},
      {3, rc::gen::inRange<uint64_t>(0, max)},
  });
}

// Inside a generation context (gen::exec, properties): draw one value.
template <class T>
T u(unsigned width) {
  return static_cast<T>(*bits(width));
}
bool flag() {
  return *rc::gen::arbitrary<bool>();
}
// An address with bits [hi:lo] random and every other bit zero.
uint64_t addr(unsigned hi, unsigned lo) {
  return *bits(hi - lo + 1) << lo;
}

template <std::size_t N>
std::array<uint64_t, N> masked_words(const std::array<uint64_t, N>& mask) {
  std::array<uint64_t, N> w{};
  for (std::size_t i = 0; i < N; ++i)
    w[i] = *bits(64) & mask[i];
  return w;
}

rc::Gen<Ste> gen_ste() {
  return rc::gen::exec([] {
    Ste s;
    s.v = flag();
    s.config = u<StreamConfig>(3);
    s.s1_fmt = u<uint8_t>(2);
    s.s1_context_ptr = addr(51, 6);
    s.s1_cd_max = u<uint8_t>(5);
    s.s1_dss = u<uint8_t>(2);
    s.s1_cir = u<uint8_t>(2);
    s.s1_cor = u<uint8_t>(2);
    s.s1_csh = u<uint8_t>(2);
    s.mev = flag();
    s.s2_fwb = flag();
    s.s1_stalld = flag();
    s.eats = u<uint8_t>(2);
    s.strw = u<uint8_t>(2);
    s.shcfg = u<uint8_t>(2);
    s.s2_vmid = u<uint16_t>(16);
    s.s2_t0sz = u<uint8_t>(6);
    s.s2_sl0 = u<uint8_t>(2);
    s.s2_ir0 = u<uint8_t>(2);
    s.s2_or0 = u<uint8_t>(2);
    s.s2_sh0 = u<uint8_t>(2);
    s.s2_tg = u<uint8_t>(2);
    s.s2_ps = u<uint8_t>(3);
    s.s2_aa64 = flag();
    s.s2_endi = flag();
    s.s2_affd = flag();
    s.s2_ptw = flag();
    s.s2_hd = flag();
    s.s2_ha = flag();
    s.s2_s = flag();
    s.s2_r = flag();
    s.s2_ttb = addr(51, 4);
    return s;
  });
}

rc::Gen<Cd> gen_cd() {
  return rc::gen::exec([] {
    Cd c;
    c.t0sz = u<uint8_t>(6);
    c.tg0 = u<uint8_t>(2);
    c.ir0 = u<uint8_t>(2);
    c.or0 = u<uint8_t>(2);
    c.sh0 = u<uint8_t>(2);
    c.epd0 = flag();
    c.endi = flag();
    c.t1sz = u<uint8_t>(6);
    c.tg1 = u<uint8_t>(2);
    c.epd1 = flag();
    c.v = flag();
    c.ips = u<uint8_t>(3);
    c.affd = flag();
    c.tbi0 = flag();
    c.tbi1 = flag();
    c.aa64 = flag();
    c.hd = flag();
    c.ha = flag();
    c.s = flag();
    c.r = flag();
    c.a = flag();
    c.aset = flag();
    c.asid = u<uint16_t>(16);
    c.nscfg0 = flag();
    c.had0 = flag();
    c.ttb0 = addr(51, 4);
    c.nscfg1 = flag();
    c.had1 = flag();
    c.ttb1 = addr(51, 4);
    c.mair0 = u<uint32_t>(32);
    c.mair1 = u<uint32_t>(32);
    return c;
  });
}

template <class T>
constexpr bool has_opcode(uint8_t op) {
  if constexpr (std::is_same_v<T, CmdUnknown>)
    return false;
  else
    return T::opcode == op;
}
template <std::size_t... I>
constexpr bool known_opcode_impl(uint8_t op, std::index_sequence<I...>) {
  return (has_opcode<std::variant_alternative_t<I, Command>>(op) || ...);
}
constexpr bool known_opcode(uint8_t op) {
  return known_opcode_impl(op, std::make_index_sequence<std::variant_size_v<Command>>{});
}

// One command of type T with every field it has drawn within its width.
template <class T>
T random_cmd() {
  T c{};
  if constexpr (std::is_same_v<T, CmdUnknown>) {
    const auto op = *rc::gen::suchThat(rc::gen::inRange<unsigned>(0, 256),
                                       [](unsigned o) { return !known_opcode(uint8_t(o)); });
    c.raw = {(*bits(64) & ~uint64_t(0xff)) | op, *bits(64)};
  } else {
    if constexpr (requires { c.ssec; }) c.ssec = flag();
    if constexpr (requires { c.ssv; }) c.ssv = flag();
    if constexpr (requires { c.ssid; }) c.ssid = u<uint32_t>(20);
    if constexpr (requires { c.sid; }) c.sid = u<uint32_t>(32);
    if constexpr (requires { c.leaf; }) c.leaf = flag();
    if constexpr (requires { c.range; }) c.range = u<uint8_t>(5);
    if constexpr (requires { c.num; }) c.num = u<uint8_t>(5);
    if constexpr (requires { c.scale; }) c.scale = u<uint8_t>(5);
    if constexpr (requires { c.vmid; }) c.vmid = u<uint16_t>(16);
    if constexpr (requires { c.asid; }) c.asid = u<uint16_t>(16);
    if constexpr (requires { c.ttl; }) c.ttl = u<uint8_t>(2);
    if constexpr (requires { c.tg; }) c.tg = u<uint8_t>(2);
    if constexpr (requires { c.addr; })
      c.addr = addr(std::is_same_v<T, CmdTlbiS2Ipa> ? 51 : 63, 12);
    if constexpr (requires { c.size; }) c.size = u<uint8_t>(std::is_same_v<T, CmdAtcInv> ? 6 : 5);
    if constexpr (requires { c.global; }) c.global = flag();
    if constexpr (requires { c.grpid; }) c.grpid = u<uint16_t>(9);
    if constexpr (requires { c.resp; }) c.resp = u<uint8_t>(2);
    if constexpr (requires { c.stag; }) c.stag = u<uint16_t>(16);
    if constexpr (requires { c.cs; }) c.cs = u<uint8_t>(2);
    if constexpr (requires { c.msh; }) c.msh = u<uint8_t>(2);
    if constexpr (requires { c.msi_attr; }) c.msi_attr = u<uint8_t>(4);
    if constexpr (requires { c.msi_data; }) c.msi_data = u<uint32_t>(32);
    if constexpr (requires { c.msi_addr; }) c.msi_addr = addr(51, 2);
  }
  return c;
}
template <std::size_t... I>
rc::Gen<Command> gen_command_impl(std::index_sequence<I...>) {
  return rc::gen::oneOf(rc::gen::exec(
      [] { return Command(random_cmd<std::variant_alternative_t<I, Command>>()); })...);
}
rc::Gen<Command> gen_command() {
  return gen_command_impl(std::make_index_sequence<std::variant_size_v<Command>>{});
}

rc::Gen<EventRecord> gen_event() {
  return rc::gen::exec([] {
    EventRecord e;
    e.type = u<EventType>(8);
    e.ssv = flag();
    e.ssid = u<uint32_t>(20);
    e.sid = u<uint32_t>(32);
    e.stag = u<uint16_t>(16);
    e.stall = flag();
    e.pnu = flag();
    e.ind = flag();
    e.rnw = flag();
    e.s2 = flag();
    e.event_class = u<uint8_t>(2);
    e.tt_read = flag();
    e.input_addr = u<uint64_t>(64);
    e.addr2 = addr(51, 3);
    return e;
  });
}

struct DescCase {
  DescFormat fmt;
  int level = 0;
};
rc::Gen<DescCase> gen_desc_case() {
  return rc::gen::exec([] {
    DescCase c;
    c.fmt.granule = *rc::gen::element(Granule::g4k, Granule::g16k, Granule::g64k);
    c.fmt.stage = *rc::gen::element(Stage::s1, Stage::s2);
    c.fmt.oa52 = flag();
    c.level = *rc::gen::inRange(0, 4);
    return c;
  });
}
// The output address of a leaf at `level` (or the next table, level 3 granularity).
uint64_t random_oa(const DescFormat& f, unsigned lo) {
  uint64_t oa = addr(47, lo);
  if (f.granule == Granule::g64k && f.oa52) oa |= addr(51, 48);
  return oa;
}
Descriptor random_descriptor(const DescCase& c) {
  const bool leaf_ok = c.level == 3 || block_allowed(c.fmt.granule, c.level, c.fmt.oa52);
  const int pick = *rc::gen::inRange(0, 3);
  if (pick == 0 || (pick == 1 && c.level == 3) || (pick == 2 && !leaf_ok)) {
    uint64_t raw = *bits(64) & ~uint64_t(1);                    // invalid: bit 0 clear
    if (c.level == 3 && flag()) raw = (raw & ~uint64_t(3)) | 1; // or reserved type 0b01
    return InvalidDesc{raw};
  }
  if (pick == 1) {
    TableDesc t;
    t.next_table = random_oa(c.fmt, granule_shift(c.fmt.granule));
    if (c.fmt.stage == Stage::s1) {
      t.pxn_table = flag();
      t.xn_table = flag();
      t.ap_table = u<uint8_t>(2);
      t.ns_table = flag();
    }
    return t;
  }
  const unsigned lo = level_shift(c.fmt.granule, c.level);
  if (c.fmt.stage == Stage::s1) {
    S1Leaf l;
    l.oa = random_oa(c.fmt, lo);
    l.attr_indx = u<uint8_t>(3);
    l.ns = flag();
    l.ap = u<uint8_t>(2);
    l.sh = u<uint8_t>(2);
    l.af = flag();
    l.ng = flag();
    l.gp = flag();
    l.dbm = flag();
    l.contig = flag();
    l.pxn = flag();
    l.uxn = flag();
    l.sw = u<uint8_t>(4);
    return l;
  }
  S2Leaf l;
  l.oa = random_oa(c.fmt, lo);
  l.mem_attr = u<uint8_t>(4);
  l.s2ap = u<uint8_t>(2);
  l.sh = u<uint8_t>(2);
  l.af = flag();
  l.dbm = flag();
  l.contig = flag();
  l.xn = u<uint8_t>(2);
  l.sw = u<uint8_t>(4);
  return l;
}

// ---- Round-trip properties -------------------------------------------------------------------

RC_GTEST_PROP(SmmuV3Ste, DecodeEncode, ()) {
  const Ste s = *gen_ste();
  RC_ASSERT(decode_ste(encode(s)) == s);
}
RC_GTEST_PROP(SmmuV3Ste, EncodeDecode, ()) {
  const Ste8 w = masked_words(ste_field_mask());
  RC_ASSERT(encode(decode_ste(w)) == w);
}
RC_GTEST_PROP(SmmuV3Ste, ReservedBitsDropped, ()) {
  const Ste8 w = masked_words(Ste8{~0ull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull});
  const Ste8 m = ste_field_mask();
  Ste8 kept{};
  for (std::size_t i = 0; i < 8; ++i)
    kept[i] = w[i] & m[i];
  RC_ASSERT(encode(decode_ste(w)) == kept);
}

RC_GTEST_PROP(SmmuV3Cd, DecodeEncode, ()) {
  const Cd c = *gen_cd();
  RC_ASSERT(decode_cd(encode(c)) == c);
}
RC_GTEST_PROP(SmmuV3Cd, EncodeDecode, ()) {
  const Cd8 w = masked_words(cd_field_mask());
  RC_ASSERT(encode(decode_cd(w)) == w);
}

RC_GTEST_PROP(SmmuV3L1, RoundTrips, ()) {
  const StrtabL1Desc s{u<uint8_t>(5), addr(51, 6)};
  RC_ASSERT(decode_strtab_l1(encode(s)) == s);
  const CdL1Desc c{flag(), addr(51, 12)};
  RC_ASSERT(decode_cd_l1(encode(c)) == c);
  const uint64_t ws = *bits(64) & strtab_l1_field_mask();
  RC_ASSERT(encode(decode_strtab_l1(ws)) == ws);
  const uint64_t wc = *bits(64) & cd_l1_field_mask();
  RC_ASSERT(encode(decode_cd_l1(wc)) == wc);
}

RC_GTEST_PROP(SmmuV3Command, DecodeEncode, ()) {
  const Command c = *gen_command();
  RC_ASSERT(decode_command(encode(c)) == c);
  RC_ASSERT(uint8_t(encode(c)[0] & 0xff) == opcode_of(c));
}
RC_GTEST_PROP(SmmuV3Command, EncodeDecode, ()) {
  const uint8_t op = *rc::gen::arbitrary<uint8_t>();
  Cmd2 w = masked_words(command_field_mask(op));
  w[0] = (w[0] & ~uint64_t(0xff)) | op;
  RC_ASSERT(encode(decode_command(w)) == w);
}

RC_GTEST_PROP(SmmuV3Event, DecodeEncode, ()) {
  const EventRecord e = *gen_event();
  RC_ASSERT(decode_event(encode(e)) == e);
}
RC_GTEST_PROP(SmmuV3Event, EncodeDecode, ()) {
  const Evt4 w = masked_words(event_field_mask());
  RC_ASSERT(encode(decode_event(w)) == w);
}

RC_GTEST_PROP(SmmuV3Descriptor, DecodeEncode, ()) {
  const DescCase c = *gen_desc_case();
  const Descriptor d = random_descriptor(c);
  RC_ASSERT(decode_descriptor(encode(d, c.fmt, c.level), c.fmt, c.level) == d);
}
RC_GTEST_PROP(SmmuV3Descriptor, EncodeDecode, ()) {
  const DescCase c = *gen_desc_case();
  const uint64_t raw = *bits(64);
  const DescKind k = kind_of(decode_descriptor(raw, c.fmt, c.level), c.level);
  const uint64_t w = raw & descriptor_field_mask(k, c.fmt, c.level);
  RC_ASSERT(kind_of(decode_descriptor(w, c.fmt, c.level), c.level) == k);
  RC_ASSERT(encode(decode_descriptor(w, c.fmt, c.level), c.fmt, c.level) == w);
}

RC_GTEST_PROP(SmmuV3Registers, DecodeEncode, ()) {
  Idr0 i0;
  i0.s2p = flag();
  i0.s1p = flag();
  i0.ttf = u<uint8_t>(2);
  i0.cohacc = flag();
  i0.btm = flag();
  i0.httu = u<uint8_t>(2);
  i0.dormhint = flag();
  i0.hyp = flag();
  i0.ats = flag();
  i0.ns1ats = flag();
  i0.asid16 = flag();
  i0.msi = flag();
  i0.sev = flag();
  i0.atos = flag();
  i0.pri = flag();
  i0.vmw = flag();
  i0.vmid16 = flag();
  i0.cd2l = flag();
  i0.vatos = flag();
  i0.ttendian = u<uint8_t>(2);
  i0.atsrecerr = flag();
  i0.stall_model = u<uint8_t>(2);
  i0.term_model = flag();
  i0.st_level = u<uint8_t>(2);
  i0.rme_impl = flag();
  RC_ASSERT(decode_idr0(encode(i0)) == i0);

  const Idr1 i1{u<uint8_t>(6), u<uint8_t>(5), u<uint8_t>(5), u<uint8_t>(5), u<uint8_t>(5), flag(),
                flag(),        flag(),        flag(),        flag(),        flag()};
  RC_ASSERT(decode_idr1(encode(i1)) == i1);

  const Idr3 i3{flag(), flag(), flag(),        flag(), flag(), flag(),
                flag(), flag(), u<uint8_t>(2), flag(), flag(), flag()};
  RC_ASSERT(decode_idr3(encode(i3)) == i3);

  const Idr5 i5{u<uint8_t>(3), flag(), flag(), flag(), u<uint8_t>(2), u<uint16_t>(16)};
  RC_ASSERT(decode_idr5(encode(i5)) == i5);

  const Cr0 c0{flag(), flag(), flag(), flag(), flag()};
  RC_ASSERT(decode_cr0(encode(c0)) == c0);

  const StrtabBase sb{addr(51, 6), flag()};
  RC_ASSERT(decode_strtab_base(encode(sb)) == sb);
  const StrtabBaseCfg sbc{u<uint8_t>(6), u<uint8_t>(5), u<uint8_t>(2)};
  RC_ASSERT(decode_strtab_base_cfg(encode(sbc)) == sbc);
  const QueueBase qb{u<uint8_t>(5), addr(51, 5), flag()};
  RC_ASSERT(decode_queue_base(encode(qb)) == qb);
}
RC_GTEST_PROP(SmmuV3Registers, EncodeDecode, ()) {
  const auto w32 = [](uint32_t m) { return uint32_t(*bits(32)) & m; };
  const uint32_t a = w32(idr0_field_mask());
  RC_ASSERT(encode(decode_idr0(a)) == a);
  const uint32_t b = w32(idr1_field_mask());
  RC_ASSERT(encode(decode_idr1(b)) == b);
  const uint32_t c = w32(idr3_field_mask());
  RC_ASSERT(encode(decode_idr3(c)) == c);
  const uint32_t d = w32(idr5_field_mask());
  RC_ASSERT(encode(decode_idr5(d)) == d);
  const uint32_t e = w32(cr0_field_mask());
  RC_ASSERT(encode(decode_cr0(e)) == e);
  const uint32_t f = w32(strtab_base_cfg_field_mask());
  RC_ASSERT(encode(decode_strtab_base_cfg(f)) == f);
  const uint64_t g = *bits(64) & strtab_base_field_mask();
  RC_ASSERT(encode(decode_strtab_base(g)) == g);
  const uint64_t h = *bits(64) & queue_base_field_mask();
  RC_ASSERT(encode(decode_queue_base(h)) == h);
}

RC_GTEST_PROP(SmmuV3QueuePtr, RoundTrips, ()) {
  const unsigned n = *rc::gen::inRange(0u, 20u);
  const QueuePtr p{u<uint32_t>(n), flag(), u<uint8_t>(7), flag()};
  RC_ASSERT(decode_queue_ptr(encode(p, n), n) == p);
  const uint32_t w = uint32_t(*bits(32)) & queue_ptr_field_mask(n);
  RC_ASSERT(encode(decode_queue_ptr(w, n), n) == w);
}

// ---- Pinned encodings: STE -------------------------------------------------------------------

TEST(SmmuV3Ste, ValidIsBit0OfWord0) {
  EXPECT_EQ(encode(Ste{.v = true}), (Ste8{1, 0, 0, 0, 0, 0, 0, 0}));
}

TEST(SmmuV3Ste, ConfigValues) {
  // STRTAB_STE_0_CFG GENMASK_ULL(3, 1) with the values at arm-smmu-v3.h:240-243 and 7.
  EXPECT_EQ(encode(Ste{.config = StreamConfig::bypass})[0], 0x8u);
  EXPECT_EQ(encode(Ste{.config = StreamConfig::s1_trans})[0], 0xAu);
  EXPECT_EQ(encode(Ste{.config = StreamConfig::s2_trans})[0], 0xCu);
  EXPECT_EQ(encode(Ste{.config = StreamConfig::nested})[0], 0xEu);
}

TEST(SmmuV3Ste, FieldMaskMatchesHeaderMasks) {
  const Ste8 m = ste_field_mask();
  EXPECT_EQ(m[0], 0xF80F'FFFF'FFFF'FFFFull); // V, CFG, S1FMT, S1CTXPTR[51:6], S1CDMAX[63:59]
  EXPECT_EQ(m[1], 0x0000'3000'FA08'00FFull); // S1DSS..S1CSH, MEV, S2FWB, STALLD, EATS, STRW, SHCFG
  EXPECT_EQ(m[2], 0x07FF'FFFF'0000'FFFFull); // S2VMID, VTCR[50:32], S2AA64..S2R [58:51]
  EXPECT_EQ(m[3], 0x000F'FFFF'FFFF'FFF0ull); // S2TTB[51:4]
  for (std::size_t i = 4; i < 8; ++i)
    EXPECT_EQ(m[i], 0u);
}

TEST(SmmuV3Ste, S1CdTableSte) {
  // The shape of arm_smmu_make_cdtable_ste (arm-smmu-v3.c:1596-1651).
  Ste s;
  s.v = true;
  s.config = StreamConfig::s1_trans;
  s.s1_fmt = 2;
  s.s1_context_ptr = 0x0000'0012'3456'7840;
  s.s1_cd_max = 20;
  s.s1_dss = 1;
  s.s1_cir = 1;
  s.s1_cor = 1;
  s.s1_csh = 3;
  s.s1_stalld = true;
  s.eats = 1;
  s.strw = 2;
  s.shcfg = 1;
  const Ste8 w = encode(s);
  EXPECT_EQ(w[0], 0xA000'0012'3456'786Bull); // 20<<59 | ptr | 2<<4 | 5<<1 | 1
  EXPECT_EQ(w[1], 0x0000'1000'9800'00D5ull); // SHCFG 1<<44 | STRW 2<<30 | EATS 1<<28 | ...
  EXPECT_EQ(decode_ste(w), s);
}

TEST(SmmuV3Ste, S2DomainSte) {
  // The shape of arm_smmu_make_s2_domain_ste (arm-smmu-v3.c:1654-1700).
  Ste s;
  s.v = true;
  s.config = StreamConfig::s2_trans;
  s.s2_vmid = 5;
  s.s2_t0sz = 24;
  s.s2_sl0 = 1;
  s.s2_ir0 = 1;
  s.s2_or0 = 1;
  s.s2_sh0 = 3;
  s.s2_tg = 0;
  s.s2_ps = 5;
  s.s2_aa64 = true;
  s.s2_ptw = true;
  s.s2_r = true;
  s.s2_ttb = 0x8000'1000;
  const Ste8 w = encode(s);
  EXPECT_EQ(w[0], 0xDu);
  EXPECT_EQ(w[2], 0x044D'3558'0000'0005ull); // VTCR 0x53558 at bit 32; AA64 51, PTW 54, R 58
  EXPECT_EQ(w[3], 0x8000'1000u);
  // QEMU master's STE_5 bits land on the same DW2 bits: S2AFFD 53, S2HD 55, S2HA 56, S2S 57.
  EXPECT_EQ(encode(Ste{.s2_affd = true})[2], uint64_t(1) << 53);
  EXPECT_EQ(encode(Ste{.s2_hd = true})[2], uint64_t(1) << 55);
  EXPECT_EQ(encode(Ste{.s2_ha = true})[2], uint64_t(1) << 56);
  EXPECT_EQ(encode(Ste{.s2_s = true})[2], uint64_t(1) << 57);
}

TEST(SmmuV3Ste, AddressFieldsKeepOnlyTheirBits) {
  const Ste8 w = encode(Ste{.s1_context_ptr = ~uint64_t(0), .s2_ttb = ~uint64_t(0)});
  EXPECT_EQ(w[0], 0x000F'FFFF'FFFF'FFC0ull); // STRTAB_STE_0_S1CTXPTR_MASK
  EXPECT_EQ(w[3], 0x000F'FFFF'FFFF'FFF0ull); // STRTAB_STE_3_S2TTB_MASK
}

TEST(SmmuV3L1, Descriptors) {
  EXPECT_EQ(encode(StrtabL1Desc{.span = 9, .l2_ptr = 0x1234'5640}), 0x1234'5649u);
  EXPECT_EQ(strtab_l1_field_mask(), 0x000F'FFFF'FFFF'FFDFull);
  EXPECT_EQ(encode(CdL1Desc{.v = true, .l2_ptr = 0xABCD'E000}), 0xABCD'E001u);
  EXPECT_EQ(cd_l1_field_mask(), 0x000F'FFFF'FFFF'F001ull);
}

// ---- Pinned encodings: CD --------------------------------------------------------------------

TEST(SmmuV3Cd, S1Cd) {
  // The shape of arm_smmu_make_s1_cd (arm-smmu-v3.c:1369-1409).
  Cd c;
  c.t0sz = 16;
  c.ir0 = 1;
  c.or0 = 1;
  c.sh0 = 3;
  c.epd1 = true;
  c.v = true;
  c.ips = 5;
  c.aa64 = true;
  c.r = true;
  c.a = true;
  c.aset = true;
  c.asid = 0xABCD;
  c.ttb0 = 0x0000'1234'5678'9000;
  c.mair0 = 0x5566'7788;
  c.mair1 = 0x1122'3344;
  const Cd8 w = encode(c);
  EXPECT_EQ(w[0], 0xABCD'E205'C000'3510ull);
  EXPECT_EQ(w[1], 0x0000'1234'5678'9000ull);
  EXPECT_EQ(w[2], 0u);
  EXPECT_EQ(w[3], 0x1122'3344'5566'7788ull); // data[3] = mair
  EXPECT_EQ(decode_cd(w), c);
}

TEST(SmmuV3Cd, FieldMaskMatchesHeaderMasks) {
  const Cd8 m = cd_field_mask();
  EXPECT_EQ(m[0], 0xFFFF'FECF'C0FF'FFFFull);
  EXPECT_EQ(m[1], 0x000F'FFFF'FFFF'FFF3ull); // NSCFG0, HAD0, TTB0[51:4]
  EXPECT_EQ(m[2], 0x000F'FFFF'FFFF'FFF3ull); // NSCFG1, HAD1, TTB1[51:4]
  EXPECT_EQ(m[3], ~uint64_t(0));             // MAIR0, MAIR1
  for (std::size_t i = 4; i < 8; ++i)
    EXPECT_EQ(m[i], 0u);
}

TEST(SmmuV3Cd, SingleBits) {
  EXPECT_EQ(encode(Cd{.v = true})[0], uint64_t(1) << 31);    // CTXDESC_CD_0_V
  EXPECT_EQ(encode(Cd{.epd0 = true})[0], uint64_t(1) << 14); // TCR_EPD0
  EXPECT_EQ(encode(Cd{.endi = true})[0], uint64_t(1) << 15);
  EXPECT_EQ(encode(Cd{.affd = true})[0], uint64_t(1) << 35); // QEMU CD_AFFD word[1] bit 3
  EXPECT_EQ(encode(Cd{.tbi0 = true})[0], uint64_t(1) << 38);
  EXPECT_EQ(encode(Cd{.hd = true})[0], uint64_t(1) << 42);
  EXPECT_EQ(encode(Cd{.ha = true})[0], uint64_t(1) << 43);
  EXPECT_EQ(encode(Cd{.s = true})[0], uint64_t(1) << 44);
  EXPECT_EQ(encode(Cd{.t1sz = 0x3F, .tg1 = 3})[0], 0xFFu << 16);
  EXPECT_EQ(encode(Cd{.had1 = true})[2], 2u);
}

// ---- Pinned encodings: commands ----------------------------------------------------------------

TEST(SmmuV3Command, Opcodes) {
  const std::pair<Command, uint8_t> table[] = {
      {CmdPrefetchConfig{}, 0x01}, {CmdPrefetchAddr{}, 0x02}, {CmdCfgiSte{}, 0x03},
      {CmdCfgiSteRange{}, 0x04},   {CmdCfgiCd{}, 0x05},       {CmdCfgiCdAll{}, 0x06},
      {CmdTlbiNhAll{}, 0x10},      {CmdTlbiNhAsid{}, 0x11},   {CmdTlbiNhVa{}, 0x12},
      {CmdTlbiNhVaa{}, 0x13},      {CmdTlbiEl3All{}, 0x18},   {CmdTlbiEl2All{}, 0x20},
      {CmdTlbiEl2Asid{}, 0x21},    {CmdTlbiEl2Va{}, 0x22},    {CmdTlbiEl2Vaa{}, 0x23},
      {CmdTlbiS12Vmall{}, 0x28},   {CmdTlbiS2Ipa{}, 0x2a},    {CmdTlbiNsnhAll{}, 0x30},
      {CmdAtcInv{}, 0x40},         {CmdPriResp{}, 0x41},      {CmdResume{}, 0x44},
      {CmdSync{}, 0x46},
  };
  for (const auto& [cmd, op] : table) {
    EXPECT_EQ(opcode_of(cmd), op);
    EXPECT_EQ(encode(cmd), (Cmd2{op, 0}));
    EXPECT_EQ(decode_command(Cmd2{op, 0}), cmd);
  }
  EXPECT_EQ(std::size(table) + 1, std::variant_size_v<Command>);
}

TEST(SmmuV3Command, TlbiNhVa) {
  const CmdTlbiNhVa c{.num = 1,
                      .scale = 2,
                      .vmid = 0x1234,
                      .asid = 0xABCD,
                      .leaf = true,
                      .ttl = 3,
                      .tg = 1,
                      .addr = 0x0000'7FFF'FFFF'F000};
  // ASID at [63:48], VMID [47:32], SCALE [24:20], NUM [16:12], opcode 0x12.
  EXPECT_EQ(encode(c), (Cmd2{0xABCD'1234'0020'1012ull, 0x0000'7FFF'FFFF'F701ull}));
}

TEST(SmmuV3Command, TlbiS2IpaAddressIs51To12) {
  const CmdTlbiS2Ipa c{.vmid = 7, .addr = ~uint64_t(0) << 12};
  EXPECT_EQ(encode(c), (Cmd2{0x0000'0007'0000'002Aull, 0x000F'FFFF'FFFF'F000ull}));
}

TEST(SmmuV3Command, SyncAsLinuxBuildsIt) {
  // arm-smmu-v3.c:332-341: CS=IRQ with an MSI address, MSH=ISH, MSIATTR=OIWB.
  const CmdSync c{.cs = 1, .msh = 3, .msi_attr = 0xF, .msi_addr = 0x0000'00FF'FFFF'FFFC};
  EXPECT_EQ(encode(c), (Cmd2{0x0FC0'1046u, 0x0000'00FF'FFFF'FFFCull}));
}

TEST(SmmuV3Command, CfgiAllIsSteRangeWith31) {
  EXPECT_EQ(encode(cfgi_all()), (Cmd2{0x04, 0x1F}));
  // QEMU's SMMU_CMD_CFGI_ALL (0x07) is not an opcode here: it stays raw.
  EXPECT_TRUE(std::holds_alternative<CmdUnknown>(decode_command(Cmd2{0x07, 0x1F})));
  EXPECT_TRUE(std::holds_alternative<CmdUnknown>(decode_command(Cmd2{0x1a, 0})));
}

TEST(SmmuV3Command, CfgiCd) {
  const CmdCfgiCd c{.ssid = 0xFFFFF, .sid = 0x42, .leaf = true};
  EXPECT_EQ(encode(c), (Cmd2{0x0000'0042'FFFF'F005ull, 1}));
}

TEST(SmmuV3Command, AtcInvPriRespResume) {
  const CmdAtcInv atc{.global = true, .ssv = true, .ssid = 3, .sid = 7, .size = 52, .addr = 0};
  EXPECT_EQ(encode(atc), (Cmd2{0x0000'0007'0000'3A40ull, 52}));
  const CmdPriResp pri{.ssv = false, .ssid = 0, .sid = 1, .grpid = 0x1FF, .resp = 2};
  EXPECT_EQ(encode(pri), (Cmd2{0x0000'0001'0000'0041ull, 0x21FF}));
  const CmdResume res{.resp = 1, .sid = 9, .stag = 0xBEEF};
  EXPECT_EQ(encode(res), (Cmd2{0x0000'0009'0000'1044ull, 0xBEEF}));
}

TEST(SmmuV3Command, ReservedBitsAreDroppedOnDecode) {
  const Command c = decode_command(Cmd2{(~uint64_t(0) << 8) | 0x20, ~uint64_t(0)});
  EXPECT_EQ(c, Command(CmdTlbiEl2All{}));
  EXPECT_EQ(command_field_mask(0x20), (Cmd2{0xFF, 0}));
  EXPECT_EQ(command_field_mask(0x07), (Cmd2{~uint64_t(0), ~uint64_t(0)}));
}

// ---- Pinned encodings: events ------------------------------------------------------------------

TEST(SmmuV3Event, DecodeTranslationFault) {
  const Evt4 w{0x0000'0077'0000'5810ull, 0x0000'018A'8000'1234ull, 0x0000'DEAD'BEEF'0000ull,
               0x0000'0012'3456'7000ull};
  const EventRecord e = decode_event(w);
  EXPECT_EQ(e.type, EventType::f_translation);
  EXPECT_TRUE(e.ssv);
  EXPECT_EQ(e.ssid, 5u);
  EXPECT_EQ(e.sid, 0x77u);
  EXPECT_EQ(e.stag, 0x1234u);
  EXPECT_TRUE(e.stall);
  EXPECT_TRUE(e.pnu);
  EXPECT_FALSE(e.ind);
  EXPECT_TRUE(e.rnw);
  EXPECT_TRUE(e.s2);
  EXPECT_EQ(e.event_class, 1u);
  EXPECT_FALSE(e.tt_read);
  EXPECT_EQ(e.input_addr, 0x0000'DEAD'BEEF'0000ull);
  EXPECT_EQ(e.addr2, 0x0000'0012'3456'7000ull);
  EXPECT_EQ(encode(e), w);
}

TEST(SmmuV3Event, FieldMaskAndTypeCodes) {
  EXPECT_EQ(event_field_mask(), (Evt4{0xFFFF'FFFF'FFFF'F8FFull, 0x0000'138E'8000'FFFFull,
                                      ~uint64_t(0), 0x000F'FFFF'FFFF'FFF8ull}));
  EXPECT_EQ(uint8_t(EventType::f_uut), 0x01);
  EXPECT_EQ(uint8_t(EventType::c_bad_ste), 0x04);
  EXPECT_EQ(uint8_t(EventType::f_walk_eabt), 0x0b);
  EXPECT_EQ(uint8_t(EventType::f_permission), 0x13);
  EXPECT_EQ(uint8_t(EventType::f_cfg_conflict), 0x21);
  EXPECT_EQ(uint8_t(EventType::e_page_request), 0x24);
  EXPECT_EQ(uint8_t(EventType::f_vms_fetch), 0x25);
  int known = 0;
  for (unsigned code = 0; code < 256; ++code)
    known += is_known_event_type(uint8_t(code));
  EXPECT_EQ(known, 19);
}

// ---- Pinned encodings: descriptors -------------------------------------------------------------

constexpr DescFormat k4kS1{Granule::g4k, Stage::s1, false};
constexpr DescFormat k4kS2{Granule::g4k, Stage::s2, false};
constexpr DescFormat k16kS1{Granule::g16k, Stage::s1, false};
constexpr DescFormat k64kS1{Granule::g64k, Stage::s1, false};
constexpr DescFormat k64kS1Oa52{Granule::g64k, Stage::s1, true};

TEST(SmmuV3Descriptor, LevelGeometry) {
  EXPECT_EQ(bits_per_level(Granule::g4k), 9u);
  EXPECT_EQ(bits_per_level(Granule::g16k), 11u);
  EXPECT_EQ(bits_per_level(Granule::g64k), 13u);
  const unsigned s4k[] = {39, 30, 21, 12}, s16k[] = {47, 36, 25, 14}, s64k[] = {55, 42, 29, 16};
  for (int l = 0; l < 4; ++l) {
    EXPECT_EQ(level_shift(Granule::g4k, l), s4k[l]);
    EXPECT_EQ(level_shift(Granule::g16k, l), s16k[l]);
    EXPECT_EQ(level_shift(Granule::g64k, l), s64k[l]);
  }
  EXPECT_EQ(start_level(Granule::g4k, 48), 0);
  EXPECT_EQ(start_level(Granule::g4k, 39), 1);
  EXPECT_EQ(start_level(Granule::g16k, 48), 0);
  EXPECT_EQ(start_level(Granule::g16k, 47), 1);
  EXPECT_EQ(start_level(Granule::g64k, 48), 1);
  EXPECT_EQ(start_level(Granule::g64k, 42), 2);
  const uint64_t ia = (uint64_t(5) << 39) | (uint64_t(6) << 30) | (7u << 21) | (8u << 12) | 0x123;
  EXPECT_EQ(table_index(Granule::g4k, 0, ia, 48), 5u);
  EXPECT_EQ(table_index(Granule::g4k, 1, ia, 48), 6u);
  EXPECT_EQ(table_index(Granule::g4k, 2, ia, 48), 7u);
  EXPECT_EQ(table_index(Granule::g4k, 3, ia, 48), 8u);
  EXPECT_EQ(table_index(Granule::g4k, 0, ia, 40), 1u);             // only bit 39 is inside 40 bits
  EXPECT_EQ(table_index(Granule::g64k, 1, ~uint64_t(0), 48), 63u); // 6-bit level-1 table
}

TEST(SmmuV3Descriptor, BlockLevels) {
  // io-pgtable-arm.c:876-886: 4K {4K,2M,1G}, 16K {16K,32M}, 64K {64K,512M,+4T if oas > 48}.
  EXPECT_FALSE(block_allowed(Granule::g4k, 0));
  EXPECT_TRUE(block_allowed(Granule::g4k, 1));
  EXPECT_TRUE(block_allowed(Granule::g4k, 2));
  EXPECT_FALSE(block_allowed(Granule::g16k, 1));
  EXPECT_TRUE(block_allowed(Granule::g16k, 2));
  EXPECT_FALSE(block_allowed(Granule::g64k, 1));
  EXPECT_TRUE(block_allowed(Granule::g64k, 1, true));
  EXPECT_TRUE(block_allowed(Granule::g64k, 2));
  EXPECT_EQ(uint64_t(1) << level_shift(Granule::g4k, 1), uint64_t(1) << 30);  // 1G
  EXPECT_EQ(uint64_t(1) << level_shift(Granule::g16k, 2), uint64_t(1) << 25); // 32M
  EXPECT_EQ(uint64_t(1) << level_shift(Granule::g64k, 2), uint64_t(1) << 29); // 512M
  EXPECT_EQ(uint64_t(1) << level_shift(Granule::g64k, 1), uint64_t(1) << 42); // 4T
}

TEST(SmmuV3Descriptor, S1Page4k) {
  S1Leaf p;
  p.oa = 0x0000'1234'5678'9000;
  p.attr_indx = 1;
  p.sh = 3;
  p.af = true;
  EXPECT_EQ(encode(p, k4kS1, 3), 0x0000'1234'5678'9707ull);
  EXPECT_EQ(decode_descriptor(0x0000'1234'5678'9707ull, k4kS1, 3), Descriptor(p));
  EXPECT_EQ(kind_of(p, 3), DescKind::page);
  // Upper attributes: GP 50, DBM 51, Contig 52, PXN 53, UXN 54, SW [58:55].
  const S1Leaf hi{.gp = true, .dbm = true, .contig = true, .pxn = true, .uxn = true, .sw = 0xF};
  EXPECT_EQ(encode(hi, k4kS1, 3), 0x07FC'0000'0000'0003ull);
  const S1Leaf lo{.ns = true, .ap = 3, .ng = true};
  EXPECT_EQ(encode(lo, k4kS1, 3), 0x8E3u);
}

TEST(SmmuV3Descriptor, BlocksAndReservedTypes) {
  const uint64_t block2m = 0x4020'0000ull | 0x401; // OA 1G+2M, AF, type block
  const Descriptor d = decode_descriptor(block2m, k4kS1, 2);
  ASSERT_TRUE(std::holds_alternative<S1Leaf>(d));
  EXPECT_EQ(std::get<S1Leaf>(d).oa, 0x4020'0000u);
  EXPECT_EQ(kind_of(d, 2), DescKind::block);
  // The same type bits where no block is allowed, and 0b01 at level 3, fault.
  EXPECT_EQ(decode_descriptor(block2m, k4kS1, 0), Descriptor(InvalidDesc{block2m}));
  EXPECT_EQ(decode_descriptor(0x401, k16kS1, 1), Descriptor(InvalidDesc{0x401}));
  EXPECT_EQ(decode_descriptor(0x401, k4kS1, 3), Descriptor(InvalidDesc{0x401}));
  EXPECT_EQ(decode_descriptor(0x1234'5678'0000ull, k4kS1, 1),
            Descriptor(InvalidDesc{0x1234'5678'0000ull}));
  // 64K level-1 blocks only with 52-bit OA.
  EXPECT_TRUE(std::holds_alternative<InvalidDesc>(decode_descriptor(0x401, k64kS1, 1)));
  EXPECT_TRUE(std::holds_alternative<S1Leaf>(decode_descriptor(0x401, k64kS1Oa52, 1)));
  // A block's OA bits below its level shift are reserved.
  EXPECT_EQ(output_address_mask(k4kS1, 2), 0x0000'FFFF'FFE0'0000ull);
}

TEST(SmmuV3Descriptor, Oa52With64kGranule) {
  S1Leaf p;
  p.oa = 0x000F'0000'1234'0000;
  EXPECT_EQ(encode(p, k64kS1Oa52, 3), 0x0000'0000'1234'F003ull); // OA[51:48] in [15:12]
  EXPECT_EQ(decode_descriptor(0x0000'0000'1234'F003ull, k64kS1Oa52, 3), Descriptor(p));
  EXPECT_EQ(output_address_mask(k64kS1Oa52, 3), 0x0000'FFFF'FFFF'F000ull);
  EXPECT_EQ(output_address_mask(k64kS1, 3), 0x0000'FFFF'FFFF'0000ull);
}

TEST(SmmuV3Descriptor, Tables) {
  TableDesc t;
  t.next_table = 0x8000'0000;
  t.ns_table = true;
  t.ap_table = 2;
  t.xn_table = true;
  t.pxn_table = true;
  EXPECT_EQ(encode(t, k4kS1, 1), 0xD800'0000'8000'0003ull);
  EXPECT_EQ(decode_descriptor(0xD800'0000'8000'0003ull, k4kS1, 1), Descriptor(t));
  // Stage 2 has no hierarchical attributes: they are dropped both ways.
  EXPECT_EQ(encode(t, k4kS2, 1), 0x8000'0003u);
  EXPECT_EQ(decode_descriptor(0xD800'0000'8000'0003ull, k4kS2, 1),
            Descriptor(TableDesc{.next_table = 0x8000'0000}));
}

TEST(SmmuV3Descriptor, S2Leaf) {
  S2Leaf l;
  l.oa = 0x0000'0000'4000'0000;
  l.mem_attr = 0xF; // ARM_LPAE_PTE_MEMATTR_OIWB
  l.s2ap = 3;       // HAP read | write
  l.sh = 3;
  l.af = true;
  l.xn = 3; // ARM_LPAE_PTE_XN
  EXPECT_EQ(encode(l, k4kS2, 1), 0x0060'0000'4000'07FDull);
  EXPECT_EQ(decode_descriptor(0x0060'0000'4000'07FDull, k4kS2, 1), Descriptor(l));
}

TEST(SmmuV3Descriptor, GranuleFields) {
  EXPECT_EQ(granule_from_tg0(0), Granule::g4k);
  EXPECT_EQ(granule_from_tg0(1), Granule::g64k);
  EXPECT_EQ(granule_from_tg0(2), Granule::g16k);
  EXPECT_EQ(granule_from_tg0(3), std::nullopt);
  EXPECT_EQ(granule_from_tg1(0), std::nullopt);
  EXPECT_EQ(granule_from_tg1(1), Granule::g16k);
  EXPECT_EQ(granule_from_tg1(2), Granule::g4k);
  EXPECT_EQ(granule_from_tg1(3), Granule::g64k);
}

// ---- Pinned encodings: registers ---------------------------------------------------------------

TEST(SmmuV3Registers, Idr) {
  EXPECT_EQ(encode(Idr0{.s2p = true}), 1u);
  EXPECT_EQ(encode(Idr0{.s1p = true}), 2u);
  EXPECT_EQ(encode(Idr0{.ttf = 2}), 8u);             // IDR0_TTF_AARCH64
  EXPECT_EQ(encode(Idr0{.st_level = 1}), 1u << 27);  // IDR0_ST_LVL_2LVL
  EXPECT_EQ(encode(Idr0{.vmid16 = true}), 1u << 18); // IDR0_VMID16
  EXPECT_EQ(idr0_field_mask(), 0x5FFF'FFFFu);
  EXPECT_EQ(encode(Idr1{.sidsize = 16, .ssidsize = 20}), 16u | (20u << 6));
  EXPECT_EQ(idr1_field_mask(), 0xFFFF'FFFFu);
  EXPECT_EQ(encode(Idr3{.ril = true}), 0x400u); // IDR3_RIL
  EXPECT_EQ(idr3_field_mask(), 0xFFBCu);
  EXPECT_EQ(encode(Idr5{.oas = 5, .gran4k = true, .gran64k = true}), 0x55u);
  EXPECT_EQ(idr5_field_mask(), 0xFFFF'0C77u);
  EXPECT_EQ(oas_bits(0), 32u);
  EXPECT_EQ(oas_bits(5), 48u);
  EXPECT_EQ(oas_bits(6), 52u);
  EXPECT_EQ(oas_bits(7), std::nullopt);
}

TEST(SmmuV3Registers, ControlAndTables) {
  EXPECT_EQ(encode(Cr0{.smmuen = true, .cmdqen = true}), 0x9u);
  EXPECT_EQ(cr0_field_mask(), 0x1Fu);
  EXPECT_EQ(encode(StrtabBase{.addr = 0x8000'0040, .ra = true}), (uint64_t(1) << 62) | 0x8000'0040);
  EXPECT_EQ(strtab_base_field_mask(), 0x400F'FFFF'FFFF'FFC0ull);
  EXPECT_EQ(encode(StrtabBaseCfg{.log2size = 16, .split = 8, .fmt = 1}), 0x10210u);
  EXPECT_EQ(encode(QueueBase{.log2size = 8, .addr = 0x1'0000'0020, .rwa = true}),
            (uint64_t(1) << 62) | 0x1'0000'0028ull);
  EXPECT_EQ(queue_base_field_mask(), 0x400F'FFFF'FFFF'FFFFull);
}

TEST(SmmuV3Registers, QueuePointers) {
  EXPECT_EQ(encode(QueuePtr{.index = 5, .wrap = true}, 8), 0x105u);
  EXPECT_EQ(encode(QueuePtr{.index = 0x1FF, .wrap = false}, 8), 0xFFu); // index masked
  EXPECT_EQ(encode(QueuePtr{.err = uint8_t(CmdqError::ill)}, 8), 1u << 24);
  EXPECT_EQ(encode(QueuePtr{.ovf = true}, 8), 1u << 31);
  EXPECT_EQ(decode_queue_ptr(0x8100'0105u, 8), (QueuePtr{5, true, 1, true}));
  EXPECT_EQ(queue_ptr_field_mask(8), 0xFF00'01FFu);
  const QueuePtr a{3, false, 0, false}, b{3, true, 0, false}, c{4, false, 0, false};
  EXPECT_TRUE(queue_empty(a, a));
  EXPECT_TRUE(queue_full(b, a));
  EXPECT_FALSE(queue_full(c, a));
  EXPECT_FALSE(queue_empty(c, a));
}

} // namespace
} // namespace iommuspec::smmuv3

// Encoders and decoders for format.h. Each structure is described once, by a field table
// (`fields(x, visitor)`), and the same table drives encode, decode and the field mask, so the
// three cannot drift apart. Positions are cited in format.h next to each field.
#include "smmuv3/format.h"

#include "smmuv3/walk_step.h"

#include <concepts>
#include <cstddef>
#include <iterator>
#include <type_traits>

namespace iommuspec::smmuv3 {
namespace {

constexpr uint64_t ones(unsigned width) {
  return width >= 64 ? ~uint64_t(0) : (uint64_t(1) << width) - 1;
}
constexpr uint64_t span(unsigned hi, unsigned lo) {
  return ones(hi - lo + 1) << lo;
}

template <class T>
constexpr uint64_t as_u64(T v) {
  if constexpr (std::is_enum_v<T>)
    return uint64_t(static_cast<std::underlying_type_t<T>>(v));
  else
    return uint64_t(v);
}

// Field-table visitors. field(): a right-aligned value of `width` bits at `lo` of word `wd`.
// addr(): an address kept in place, bits [hi:lo] of word `wd`.
template <std::size_t N>
struct Packer {
  std::array<uint64_t, N> w{};
  template <class T>
  void field(std::size_t wd, unsigned lo, unsigned width, const T& v) {
    w[wd] |= (as_u64(v) & ones(width)) << lo;
  }
  void addr(std::size_t wd, unsigned hi, unsigned lo, uint64_t a) { w[wd] |= a & span(hi, lo); }
};

template <std::size_t N>
struct Unpacker {
  const std::array<uint64_t, N>& w;
  template <class T>
  void field(std::size_t wd, unsigned lo, unsigned width, T& v) {
    v = static_cast<T>((w[wd] >> lo) & ones(width));
  }
  void addr(std::size_t wd, unsigned hi, unsigned lo, uint64_t& a) { a = w[wd] & span(hi, lo); }
};

template <std::size_t N>
struct Masker {
  std::array<uint64_t, N> w{};
  template <class T>
  void field(std::size_t wd, unsigned lo, unsigned width, const T&) {
    w[wd] |= ones(width) << lo;
  }
  void addr(std::size_t wd, unsigned hi, unsigned lo, uint64_t) { w[wd] |= span(hi, lo); }
};

// `S` is T or const T: one table serves encode (const) and decode (mutable).
template <class S, class T>
concept Of = std::same_as<std::remove_const_t<S>, T>;

// ---- STE, CD, L1 descriptors ------------------------------------------------------------

template <Of<Ste> S, class V>
void fields(S& s, V& v) {
  v.field(0, 0, 1, s.v);
  v.field(0, 1, 3, s.config);
  v.field(0, 4, 2, s.s1_fmt);
  v.addr(0, 51, 6, s.s1_context_ptr);
  v.field(0, 59, 5, s.s1_cd_max);
  v.field(1, 0, 2, s.s1_dss);
  v.field(1, 2, 2, s.s1_cir);
  v.field(1, 4, 2, s.s1_cor);
  v.field(1, 6, 2, s.s1_csh);
  v.field(1, 19, 1, s.mev);
  v.field(1, 25, 1, s.s2_fwb);
  v.field(1, 27, 1, s.s1_stalld);
  v.field(1, 28, 2, s.eats);
  v.field(1, 30, 2, s.strw);
  v.field(1, 44, 2, s.shcfg);
  v.field(2, 0, 16, s.s2_vmid);
  v.field(2, 32, 6, s.s2_t0sz);
  v.field(2, 38, 2, s.s2_sl0);
  v.field(2, 40, 2, s.s2_ir0);
  v.field(2, 42, 2, s.s2_or0);
  v.field(2, 44, 2, s.s2_sh0);
  v.field(2, 46, 2, s.s2_tg);
  v.field(2, 48, 3, s.s2_ps);
  v.field(2, 51, 1, s.s2_aa64);
  v.field(2, 52, 1, s.s2_endi);
  v.field(2, 53, 1, s.s2_affd);
  v.field(2, 54, 1, s.s2_ptw);
  v.field(2, 55, 1, s.s2_hd);
  v.field(2, 56, 1, s.s2_ha);
  v.field(2, 57, 1, s.s2_s);
  v.field(2, 58, 1, s.s2_r);
  v.addr(3, 51, 4, s.s2_ttb);
}

template <Of<StrtabL1Desc> S, class V>
void fields(S& d, V& v) {
  v.field(0, 0, 5, d.span);
  v.addr(0, 51, 6, d.l2_ptr);
}

template <Of<Cd> S, class V>
void fields(S& c, V& v) {
  v.field(0, 0, 6, c.t0sz);
  v.field(0, 6, 2, c.tg0);
  v.field(0, 8, 2, c.ir0);
  v.field(0, 10, 2, c.or0);
  v.field(0, 12, 2, c.sh0);
  v.field(0, 14, 1, c.epd0);
  v.field(0, 15, 1, c.endi);
  v.field(0, 16, 6, c.t1sz);
  v.field(0, 22, 2, c.tg1);
  v.field(0, 30, 1, c.epd1);
  v.field(0, 31, 1, c.v);
  v.field(0, 32, 3, c.ips);
  v.field(0, 35, 1, c.affd);
  v.field(0, 38, 1, c.tbi0);
  v.field(0, 39, 1, c.tbi1);
  v.field(0, 41, 1, c.aa64);
  v.field(0, 42, 1, c.hd);
  v.field(0, 43, 1, c.ha);
  v.field(0, 44, 1, c.s);
  v.field(0, 45, 1, c.r);
  v.field(0, 46, 1, c.a);
  v.field(0, 47, 1, c.aset);
  v.field(0, 48, 16, c.asid);
  v.field(1, 0, 1, c.nscfg0);
  v.field(1, 1, 1, c.had0);
  v.addr(1, 51, 4, c.ttb0);
  v.field(2, 0, 1, c.nscfg1);
  v.field(2, 1, 1, c.had1);
  v.addr(2, 51, 4, c.ttb1);
  v.field(3, 0, 32, c.mair0);
  v.field(3, 32, 32, c.mair1);
}

template <Of<CdL1Desc> S, class V>
void fields(S& d, V& v) {
  v.field(0, 0, 1, d.v);
  v.addr(0, 51, 12, d.l2_ptr);
}

// ---- Commands ------------------------------------------------------------------------------

template <Of<CmdPrefetchConfig> S, class V>
void fields(S& c, V& v) {
  v.field(0, 10, 1, c.ssec);
  v.field(0, 11, 1, c.ssv);
  v.field(0, 12, 20, c.ssid);
  v.field(0, 32, 32, c.sid);
}
template <Of<CmdPrefetchAddr> S, class V>
void fields(S& c, V& v) {
  v.field(0, 10, 1, c.ssec);
  v.field(0, 11, 1, c.ssv);
  v.field(0, 12, 20, c.ssid);
  v.field(0, 32, 32, c.sid);
  v.field(1, 0, 5, c.size);
  v.addr(1, 63, 12, c.addr);
}
template <Of<CmdCfgiSte> S, class V>
void fields(S& c, V& v) {
  v.field(0, 10, 1, c.ssec);
  v.field(0, 32, 32, c.sid);
  v.field(1, 0, 1, c.leaf);
}
template <Of<CmdCfgiSteRange> S, class V>
void fields(S& c, V& v) {
  v.field(0, 10, 1, c.ssec);
  v.field(0, 32, 32, c.sid);
  v.field(1, 0, 5, c.range);
}
template <Of<CmdCfgiCd> S, class V>
void fields(S& c, V& v) {
  v.field(0, 10, 1, c.ssec);
  v.field(0, 12, 20, c.ssid);
  v.field(0, 32, 32, c.sid);
  v.field(1, 0, 1, c.leaf);
}
template <Of<CmdCfgiCdAll> S, class V>
void fields(S& c, V& v) {
  v.field(0, 10, 1, c.ssec);
  v.field(0, 32, 32, c.sid);
}
template <Of<CmdTlbiNhAll> S, class V>
void fields(S& c, V& v) {
  v.field(0, 32, 16, c.vmid);
}
template <Of<CmdTlbiNhAsid> S, class V>
void fields(S& c, V& v) {
  v.field(0, 32, 16, c.vmid);
  v.field(0, 48, 16, c.asid);
}

// The range-TLBI tail shared by the VA/VAA/IPA forms: NUM, SCALE, Leaf, TTL, TG, address.
template <class S, class V>
void tlbi_range_fields(S& c, V& v, unsigned addr_hi) {
  v.field(0, 12, 5, c.num);
  v.field(0, 20, 5, c.scale);
  v.field(1, 0, 1, c.leaf);
  v.field(1, 8, 2, c.ttl);
  v.field(1, 10, 2, c.tg);
  v.addr(1, addr_hi, 12, c.addr);
}
template <Of<CmdTlbiNhVa> S, class V>
void fields(S& c, V& v) {
  tlbi_range_fields(c, v, 63);
  v.field(0, 32, 16, c.vmid);
  v.field(0, 48, 16, c.asid);
}
template <Of<CmdTlbiNhVaa> S, class V>
void fields(S& c, V& v) {
  tlbi_range_fields(c, v, 63);
  v.field(0, 32, 16, c.vmid);
}
template <Of<CmdTlbiEl3All> S, class V>
void fields(S&, V&) {}
template <Of<CmdTlbiEl2All> S, class V>
void fields(S&, V&) {}
template <Of<CmdTlbiEl2Asid> S, class V>
void fields(S& c, V& v) {
  v.field(0, 48, 16, c.asid);
}
template <Of<CmdTlbiEl2Va> S, class V>
void fields(S& c, V& v) {
  tlbi_range_fields(c, v, 63);
  v.field(0, 48, 16, c.asid);
}
template <Of<CmdTlbiEl2Vaa> S, class V>
void fields(S& c, V& v) {
  tlbi_range_fields(c, v, 63);
}
template <Of<CmdTlbiS12Vmall> S, class V>
void fields(S& c, V& v) {
  v.field(0, 32, 16, c.vmid);
}
template <Of<CmdTlbiS2Ipa> S, class V>
void fields(S& c, V& v) {
  tlbi_range_fields(c, v, 51);
  v.field(0, 32, 16, c.vmid);
}
template <Of<CmdTlbiNsnhAll> S, class V>
void fields(S&, V&) {}
template <Of<CmdAtcInv> S, class V>
void fields(S& c, V& v) {
  v.field(0, 9, 1, c.global);
  v.field(0, 11, 1, c.ssv);
  v.field(0, 12, 20, c.ssid);
  v.field(0, 32, 32, c.sid);
  v.field(1, 0, 6, c.size);
  v.addr(1, 63, 12, c.addr);
}
template <Of<CmdPriResp> S, class V>
void fields(S& c, V& v) {
  v.field(0, 11, 1, c.ssv);
  v.field(0, 12, 20, c.ssid);
  v.field(0, 32, 32, c.sid);
  v.field(1, 0, 9, c.grpid);
  v.field(1, 12, 2, c.resp);
}
template <Of<CmdResume> S, class V>
void fields(S& c, V& v) {
  v.field(0, 12, 2, c.resp);
  v.field(0, 32, 32, c.sid);
  v.field(1, 0, 16, c.stag);
}
template <Of<CmdSync> S, class V>
void fields(S& c, V& v) {
  v.field(0, 12, 2, c.cs);
  v.field(0, 22, 2, c.msh);
  v.field(0, 24, 4, c.msi_attr);
  v.field(0, 32, 32, c.msi_data);
  v.addr(1, 51, 2, c.msi_addr);
}

// ---- Event record ------------------------------------------------------------------------

template <Of<EventRecord> S, class V>
void fields(S& e, V& v) {
  v.field(0, 0, 8, e.type);
  v.field(0, 11, 1, e.ssv);
  v.field(0, 12, 20, e.ssid);
  v.field(0, 32, 32, e.sid);
  v.field(1, 0, 16, e.stag);
  v.field(1, 31, 1, e.stall);
  v.field(1, 33, 1, e.pnu);
  v.field(1, 34, 1, e.ind);
  v.field(1, 35, 1, e.rnw);
  v.field(1, 39, 1, e.s2);
  v.field(1, 40, 2, e.event_class);
  v.field(1, 44, 1, e.tt_read);
  v.field(2, 0, 64, e.input_addr);
  v.addr(3, 51, 3, e.addr2);
}

// ---- Registers -----------------------------------------------------------------------------

template <Of<Idr0> S, class V>
void fields(S& r, V& v) {
  v.field(0, 0, 1, r.s2p);
  v.field(0, 1, 1, r.s1p);
  v.field(0, 2, 2, r.ttf);
  v.field(0, 4, 1, r.cohacc);
  v.field(0, 5, 1, r.btm);
  v.field(0, 6, 2, r.httu);
  v.field(0, 8, 1, r.dormhint);
  v.field(0, 9, 1, r.hyp);
  v.field(0, 10, 1, r.ats);
  v.field(0, 11, 1, r.ns1ats);
  v.field(0, 12, 1, r.asid16);
  v.field(0, 13, 1, r.msi);
  v.field(0, 14, 1, r.sev);
  v.field(0, 15, 1, r.atos);
  v.field(0, 16, 1, r.pri);
  v.field(0, 17, 1, r.vmw);
  v.field(0, 18, 1, r.vmid16);
  v.field(0, 19, 1, r.cd2l);
  v.field(0, 20, 1, r.vatos);
  v.field(0, 21, 2, r.ttendian);
  v.field(0, 23, 1, r.atsrecerr);
  v.field(0, 24, 2, r.stall_model);
  v.field(0, 26, 1, r.term_model);
  v.field(0, 27, 2, r.st_level);
  v.field(0, 30, 1, r.rme_impl);
}
template <Of<Idr1> S, class V>
void fields(S& r, V& v) {
  v.field(0, 0, 6, r.sidsize);
  v.field(0, 6, 5, r.ssidsize);
  v.field(0, 11, 5, r.priqs);
  v.field(0, 16, 5, r.evtqs);
  v.field(0, 21, 5, r.cmdqs);
  v.field(0, 26, 1, r.attr_perms_ovr);
  v.field(0, 27, 1, r.attr_types_ovr);
  v.field(0, 28, 1, r.rel);
  v.field(0, 29, 1, r.queues_preset);
  v.field(0, 30, 1, r.tables_preset);
  v.field(0, 31, 1, r.ecmdq);
}
template <Of<Idr3> S, class V>
void fields(S& r, V& v) {
  v.field(0, 2, 1, r.had);
  v.field(0, 3, 1, r.pbha);
  v.field(0, 4, 1, r.xnx);
  v.field(0, 5, 1, r.pps);
  v.field(0, 7, 1, r.mpam);
  v.field(0, 8, 1, r.fwb);
  v.field(0, 9, 1, r.stt);
  v.field(0, 10, 1, r.ril);
  v.field(0, 11, 2, r.bbml);
  v.field(0, 13, 1, r.e0pd);
  v.field(0, 14, 1, r.ptwnnc);
  v.field(0, 15, 1, r.dpt);
}
template <Of<Idr5> S, class V>
void fields(S& r, V& v) {
  v.field(0, 0, 3, r.oas);
  v.field(0, 4, 1, r.gran4k);
  v.field(0, 5, 1, r.gran16k);
  v.field(0, 6, 1, r.gran64k);
  v.field(0, 10, 2, r.vax);
  v.field(0, 16, 16, r.stall_max);
}
template <Of<Cr0> S, class V>
void fields(S& r, V& v) {
  v.field(0, 0, 1, r.smmuen);
  v.field(0, 1, 1, r.priqen);
  v.field(0, 2, 1, r.evtqen);
  v.field(0, 3, 1, r.cmdqen);
  v.field(0, 4, 1, r.atschk);
}
template <Of<StrtabBase> S, class V>
void fields(S& r, V& v) {
  v.addr(0, 51, 6, r.addr);
  v.field(0, 62, 1, r.ra);
}
template <Of<StrtabBaseCfg> S, class V>
void fields(S& r, V& v) {
  v.field(0, 0, 6, r.log2size);
  v.field(0, 6, 5, r.split);
  v.field(0, 16, 2, r.fmt);
}
template <Of<QueueBase> S, class V>
void fields(S& r, V& v) {
  v.field(0, 0, 5, r.log2size);
  v.addr(0, 51, 5, r.addr);
  v.field(0, 62, 1, r.rwa);
}

// ---- Generic drivers -----------------------------------------------------------------------

template <std::size_t N, class T>
std::array<uint64_t, N> pack(const T& x) {
  Packer<N> p;
  fields(x, p);
  return p.w;
}
template <class T, std::size_t N>
T unpack(const std::array<uint64_t, N>& w) {
  T x{};
  Unpacker<N> u{w};
  fields(x, u);
  return x;
}
template <std::size_t N, class T>
std::array<uint64_t, N> mask_of() {
  T x{};
  Masker<N> m;
  fields(x, m);
  return m.w;
}

// Single-word registers.
template <class T>
uint64_t pack1(const T& x) {
  return pack<1>(x)[0];
}
template <class T>
T unpack1(uint64_t w) {
  return unpack<T>(std::array<uint64_t, 1>{w});
}
template <class T>
uint64_t mask1() {
  return mask_of<1, T>()[0];
}

constexpr uint64_t kOpcodeMask = 0xff; // CMDQ_0_OP, L:383

template <class T>
constexpr bool is_unknown_v = std::is_same_v<T, CmdUnknown>;

template <std::size_t I = 0>
Command decode_by_opcode(uint8_t op, const Cmd2& w) {
  using T = std::variant_alternative_t<I, Command>;
  if constexpr (is_unknown_v<T>) {
    return CmdUnknown{w};
  } else {
    if (op == T::opcode) return unpack<T>(w);
    return decode_by_opcode<I + 1>(op, w);
  }
}

template <std::size_t I = 0>
Cmd2 mask_by_opcode(uint8_t op) {
  using T = std::variant_alternative_t<I, Command>;
  if constexpr (is_unknown_v<T>) {
    return Cmd2{~uint64_t(0), ~uint64_t(0)};
  } else {
    if (op != T::opcode) return mask_by_opcode<I + 1>(op);
    Cmd2 m = mask_of<2, T>();
    m[0] |= kOpcodeMask;
    return m;
  }
}

// ---- Descriptor helpers ---------------------------------------------------------------------

constexpr uint64_t kTypeMask = 3;  // P:69 ARM_LPAE_PTE_TYPE_MASK
constexpr uint64_t kTypeBlock = 1; // P:71
constexpr uint64_t kTypeTable = 3; // P:72 (and PAGE at level 3, P:73)

// OA bits held in place: [47:lo], and for the 64K granule OA[51:48] which the descriptor
// carries in bits [15:12] (P:186-187 paddr_to_iopte, P:198-199 iopte_to_paddr).
uint64_t oa_to_desc(uint64_t oa, const DescFormat& f, unsigned lo) {
  uint64_t w = oa & span(47, lo);
  if (f.granule == Granule::g64k && f.oa52) w |= ((oa >> 48) & 0xf) << 12;
  return w;
}
uint64_t desc_to_oa(uint64_t w, const DescFormat& f, unsigned lo) {
  return descriptor_oa(w, f, lo); // walk_step.h
}
uint64_t oa_field(const DescFormat& f, unsigned lo) {
  uint64_t m = span(47, lo);
  if (f.granule == Granule::g64k && f.oa52) m |= span(15, 12);
  return m;
}

bool level_ok(int level) {
  return level >= 0 && level <= 3;
}

// Leaf attribute tables (the OA is handled separately: its position depends on the level).
template <Of<S1Leaf> S, class V>
void leaf_attrs(S& d, V& v) {
  v.field(0, 2, 3, d.attr_indx);
  v.field(0, 5, 1, d.ns);
  v.field(0, kDescAp, 2, d.ap);
  v.field(0, 8, 2, d.sh);
  v.field(0, kDescAf, 1, d.af);
  v.field(0, 11, 1, d.ng);
  v.field(0, 50, 1, d.gp);
  v.field(0, 51, 1, d.dbm);
  v.field(0, 52, 1, d.contig);
  v.field(0, kDescPxn, 1, d.pxn);
  v.field(0, kDescUxn, 1, d.uxn);
  v.field(0, 55, 4, d.sw);
}
template <Of<S2Leaf> S, class V>
void leaf_attrs(S& d, V& v) {
  v.field(0, 2, 4, d.mem_attr);
  v.field(0, kDescAp, 2, d.s2ap);
  v.field(0, 8, 2, d.sh);
  v.field(0, kDescAf, 1, d.af);
  v.field(0, 51, 1, d.dbm);
  v.field(0, 52, 1, d.contig);
  v.field(0, kDescPxn, 2, d.xn);
  v.field(0, 55, 4, d.sw);
}
template <Of<TableDesc> S, class V>
void table_attrs(S& d, V& v) {
  v.field(0, kDescPxnTable, 1, d.pxn_table);
  v.field(0, kDescXnTable, 1, d.xn_table);
  v.field(0, kDescApTable, 2, d.ap_table);
  v.field(0, 63, 1, d.ns_table);
}

template <class T>
uint64_t attrs_mask() {
  T x{};
  Masker<1> m;
  if constexpr (std::is_same_v<T, TableDesc>)
    table_attrs(x, m);
  else
    leaf_attrs(x, m);
  return m.w[0];
}

} // namespace

// ---- Public API ------------------------------------------------------------------------------

Ste8 encode(const Ste& s) {
  return pack<8>(s);
}
Ste decode_ste(const Ste8& w) {
  return unpack<Ste>(w);
}
Ste8 ste_field_mask() {
  return mask_of<8, Ste>();
}

uint64_t encode(const StrtabL1Desc& d) {
  return pack1(d);
}
StrtabL1Desc decode_strtab_l1(uint64_t w) {
  return unpack1<StrtabL1Desc>(w);
}
uint64_t strtab_l1_field_mask() {
  return mask1<StrtabL1Desc>();
}

Cd8 encode(const Cd& c) {
  return pack<8>(c);
}
Cd decode_cd(const Cd8& w) {
  return unpack<Cd>(w);
}
Cd8 cd_field_mask() {
  return mask_of<8, Cd>();
}

uint64_t encode(const CdL1Desc& d) {
  return pack1(d);
}
CdL1Desc decode_cd_l1(uint64_t w) {
  return unpack1<CdL1Desc>(w);
}
uint64_t cd_l1_field_mask() {
  return mask1<CdL1Desc>();
}

Cmd2 encode(const Command& c) {
  return std::visit(
      [](const auto& cmd) -> Cmd2 {
        using T = std::remove_cvref_t<decltype(cmd)>;
        if constexpr (is_unknown_v<T>) {
          return cmd.raw;
        } else {
          Cmd2 w = pack<2>(cmd);
          w[0] |= T::opcode;
          return w;
        }
      },
      c);
}
Command decode_command(const Cmd2& w) {
  return decode_by_opcode(uint8_t(w[0] & kOpcodeMask), w);
}
uint8_t opcode_of(const Command& c) {
  return std::visit(
      [](const auto& cmd) -> uint8_t {
        using T = std::remove_cvref_t<decltype(cmd)>;
        if constexpr (is_unknown_v<T>)
          return uint8_t(cmd.raw[0] & kOpcodeMask);
        else
          return T::opcode;
      },
      c);
}
Cmd2 command_field_mask(uint8_t opcode) {
  return mask_by_opcode(opcode);
}

bool is_known_event_type(uint8_t code) {
  switch (EventType(code)) {
  case EventType::f_uut:
  case EventType::c_bad_streamid:
  case EventType::f_ste_fetch:
  case EventType::c_bad_ste:
  case EventType::f_bad_ats_treq:
  case EventType::f_stream_disabled:
  case EventType::f_transl_forbidden:
  case EventType::c_bad_substreamid:
  case EventType::f_cd_fetch:
  case EventType::c_bad_cd:
  case EventType::f_walk_eabt:
  case EventType::f_translation:
  case EventType::f_addr_size:
  case EventType::f_access:
  case EventType::f_permission:
  case EventType::f_tlb_conflict:
  case EventType::f_cfg_conflict:
  case EventType::e_page_request:
  case EventType::f_vms_fetch:
    return true;
  }
  return false;
}

Evt4 encode(const EventRecord& e) {
  return pack<4>(e);
}
EventRecord decode_event(const Evt4& w) {
  return unpack<EventRecord>(w);
}
Evt4 event_field_mask() {
  return mask_of<4, EventRecord>();
}

// ---- Descriptors -------------------------------------------------------------------------------

uint64_t output_address_mask(const DescFormat& f, int level) {
  if (!level_ok(level)) return 0;
  return oa_field(f, level_shift(f.granule, level));
}

uint64_t encode(const Descriptor& d, const DescFormat& f, int level) {
  return std::visit(
      [&](const auto& x) -> uint64_t {
        using T = std::remove_cvref_t<decltype(x)>;
        if constexpr (std::is_same_v<T, InvalidDesc>) {
          return x.raw;
        } else if constexpr (std::is_same_v<T, TableDesc>) {
          uint64_t w = kTypeTable | oa_to_desc(x.next_table, f, granule_shift(f.granule));
          if (f.stage == Stage::s1) {
            Packer<1> p;
            table_attrs(x, p);
            w |= p.w[0];
          }
          return w;
        } else {
          Packer<1> p;
          leaf_attrs(x, p);
          const uint64_t type = level == 3 ? kTypeTable : kTypeBlock;
          const unsigned lo = level_ok(level) ? level_shift(f.granule, level) : 12;
          return type | p.w[0] | oa_to_desc(x.oa, f, lo);
        }
      },
      d);
}

Descriptor decode_descriptor(uint64_t w, const DescFormat& f, int level) {
  // The type per walk_step.h descriptor_type (the walk and the proofs share it).
  const DescTypeOf<uint64_t> type = descriptor_type(w, f, level);
  const std::array<uint64_t, 1> words{w};
  if (type.table) {
    TableDesc t{};
    t.next_table = desc_to_oa(w, f, granule_shift(f.granule));
    if (f.stage == Stage::s1) {
      Unpacker<1> u{words};
      table_attrs(t, u);
    }
    return t;
  }
  // Invalid, reserved type at level 3, or a block not allowed here.
  if (!type.leaf) return InvalidDesc{w};
  const uint64_t oa = desc_to_oa(w, f, level_shift(f.granule, level));
  if (f.stage == Stage::s1) {
    S1Leaf l{};
    Unpacker<1> u{words};
    leaf_attrs(l, u);
    l.oa = oa;
    return l;
  }
  S2Leaf l{};
  Unpacker<1> u{words};
  leaf_attrs(l, u);
  l.oa = oa;
  return l;
}

DescKind kind_of(const Descriptor& d, int level) {
  if (std::holds_alternative<InvalidDesc>(d)) return DescKind::invalid;
  if (std::holds_alternative<TableDesc>(d)) return DescKind::table;
  return level == 3 ? DescKind::page : DescKind::block;
}

uint64_t descriptor_field_mask(DescKind k, const DescFormat& f, int level) {
  if (!level_ok(level)) return ~uint64_t(0);
  switch (k) {
  case DescKind::invalid:
    return ~uint64_t(0);
  case DescKind::table:
    return kTypeMask | oa_field(f, granule_shift(f.granule)) |
           (f.stage == Stage::s1 ? attrs_mask<TableDesc>() : 0);
  case DescKind::block:
  case DescKind::page:
    return kTypeMask | oa_field(f, level_shift(f.granule, level)) |
           (f.stage == Stage::s1 ? attrs_mask<S1Leaf>() : attrs_mask<S2Leaf>());
  }
  return ~uint64_t(0);
}

std::optional<Granule> granule_from_tg0(uint8_t tg0) {
  switch (tg0) {
  case 0:
    return Granule::g4k;
  case 1:
    return Granule::g64k;
  case 2:
    return Granule::g16k;
  default:
    return std::nullopt;
  }
}
std::optional<Granule> granule_from_tg1(uint8_t tg1) {
  switch (tg1) {
  case 1:
    return Granule::g16k;
  case 2:
    return Granule::g4k;
  case 3:
    return Granule::g64k;
  default:
    return std::nullopt;
  }
}

// ---- Registers ---------------------------------------------------------------------------------

uint32_t encode(const Idr0& r) {
  return uint32_t(pack1(r));
}
Idr0 decode_idr0(uint32_t w) {
  return unpack1<Idr0>(w);
}
uint32_t idr0_field_mask() {
  return uint32_t(mask1<Idr0>());
}

uint32_t encode(const Idr1& r) {
  return uint32_t(pack1(r));
}
Idr1 decode_idr1(uint32_t w) {
  return unpack1<Idr1>(w);
}
uint32_t idr1_field_mask() {
  return uint32_t(mask1<Idr1>());
}

uint32_t encode(const Idr3& r) {
  return uint32_t(pack1(r));
}
Idr3 decode_idr3(uint32_t w) {
  return unpack1<Idr3>(w);
}
uint32_t idr3_field_mask() {
  return uint32_t(mask1<Idr3>());
}

uint32_t encode(const Idr5& r) {
  return uint32_t(pack1(r));
}
Idr5 decode_idr5(uint32_t w) {
  return unpack1<Idr5>(w);
}
uint32_t idr5_field_mask() {
  return uint32_t(mask1<Idr5>());
}

std::optional<unsigned> oas_bits(uint8_t oas) {
  constexpr unsigned kBits[] = {32, 36, 40, 42, 44, 48, 52}; // L:68-74 IDR5_OAS_*_BIT
  if (oas < std::size(kBits)) return kBits[oas];
  return std::nullopt;
}

uint32_t encode(const Cr0& r) {
  return uint32_t(pack1(r));
}
Cr0 decode_cr0(uint32_t w) {
  return unpack1<Cr0>(w);
}
uint32_t cr0_field_mask() {
  return uint32_t(mask1<Cr0>());
}

uint64_t encode(const StrtabBase& r) {
  return pack1(r);
}
StrtabBase decode_strtab_base(uint64_t w) {
  return unpack1<StrtabBase>(w);
}
uint64_t strtab_base_field_mask() {
  return mask1<StrtabBase>();
}

uint32_t encode(const StrtabBaseCfg& r) {
  return uint32_t(pack1(r));
}
StrtabBaseCfg decode_strtab_base_cfg(uint32_t w) {
  return unpack1<StrtabBaseCfg>(w);
}
uint32_t strtab_base_cfg_field_mask() {
  return uint32_t(mask1<StrtabBaseCfg>());
}

uint64_t encode(const QueueBase& r) {
  return pack1(r);
}
QueueBase decode_queue_base(uint64_t w) {
  return unpack1<QueueBase>(w);
}
uint64_t queue_base_field_mask() {
  return mask1<QueueBase>();
}

namespace {
constexpr unsigned kErrLo = 24, kErrWidth = 7; // CMDQ_CONS_ERR GENMASK(30, 24), L:368
constexpr unsigned kOvfBit = 31;               // Q_OVERFLOW_FLAG, L:183
} // namespace

uint32_t encode(const QueuePtr& p, unsigned log2size) {
  uint64_t w = (uint64_t(p.index) & ones(log2size)) | (uint64_t(p.wrap) << log2size);
  w |= (uint64_t(p.err) & ones(kErrWidth)) << kErrLo;
  w |= uint64_t(p.ovf) << kOvfBit;
  return uint32_t(w);
}
QueuePtr decode_queue_ptr(uint32_t w, unsigned log2size) {
  QueuePtr p;
  p.index = uint32_t(w & ones(log2size));
  p.wrap = (w >> log2size) & 1;
  p.err = uint8_t((w >> kErrLo) & ones(kErrWidth));
  p.ovf = (w >> kOvfBit) & 1;
  return p;
}
uint32_t queue_ptr_field_mask(unsigned log2size) {
  return uint32_t(ones(log2size + 1) | (ones(kErrWidth) << kErrLo) | (uint64_t(1) << kOvfBit));
}
bool queue_full(const QueuePtr& prod, const QueuePtr& cons) {
  return prod.index == cons.index && prod.wrap != cons.wrap;
}
bool queue_empty(const QueuePtr& prod, const QueuePtr& cons) {
  return prod.index == cons.index && prod.wrap == cons.wrap;
}

} // namespace iommuspec::smmuv3

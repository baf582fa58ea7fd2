// The VT-d scenario compiler: `table`, `map`, `context`, `pasid`, `inv`/`invq`, `dma`,
// `faults`... into memory writes, queued descriptors, accesses and record reads. It owns the
// memory layout of conformance/suites/vtd/README.md and builds every structure with the
// model's encoders (model/vtd/format.h, walk.h).
#include "hw/compile_args.h"
#include "vtd/format.h"
#include "vtd/machine.h"
#include "vtd/walk.h"

#include <memory>

namespace iommuspec::conformance::hwc::detail {
namespace {

using scenario::Arg;

// The fixed layout (suites/vtd/README.md "Memory layout").
constexpr uint64_t kContextTables = 0x110000; // + bus * 0x2000
constexpr Range kPasidPool{0x300000, 0x3fffff};
constexpr uint64_t kWaitStatus = 0x410000;
constexpr Range kTablePool{0x1000000, 0x1ffffff};
constexpr uint64_t kTableSpan = 0x100000; // each table's share of the pool

// A structure or descriptor field by its format.h name; `p` is `present`, `if` is `if_`,
// `qdep` is `mip` (Linux's name for the device-TLB descriptor's MIP field, iommu.h:421).
template <class T>
bool set_field(T& c, std::string_view k, uint64_t v) {
  if (k == "p") k = "present";
  if (k == "if") k = "if_";
  if (k == "qdep") k = "mip";
  IOMMUSPEC_SET(present);
  IOMMUSPEC_SET(fpd);
  IOMMUSPEC_SET(tt);
  IOMMUSPEC_SET(slptptr);
  IOMMUSPEC_SET(aw);
  IOMMUSPEC_SET(avail);
  IOMMUSPEC_SET(did);
  IOMMUSPEC_SET(dte);
  IOMMUSPEC_SET(paside);
  IOMMUSPEC_SET(pre);
  IOMMUSPEC_SET(pdts);
  IOMMUSPEC_SET(pasid_dir_ptr);
  IOMMUSPEC_SET(rid_pasid);
  IOMMUSPEC_SET(pgtt);
  IOMMUSPEC_SET(slade);
  IOMMUSPEC_SET(pwsnp);
  IOMMUSPEC_SET(pgsnp);
  IOMMUSPEC_SET(sre);
  IOMMUSPEC_SET(flpm);
  IOMMUSPEC_SET(wpe);
  IOMMUSPEC_SET(eafe);
  IOMMUSPEC_SET(flptptr);
  IOMMUSPEC_SET(g);
  IOMMUSPEC_SET(sid);
  IOMMUSPEC_SET(fm);
  IOMMUSPEC_SET(dw);
  IOMMUSPEC_SET(dr);
  IOMMUSPEC_SET(am);
  IOMMUSPEC_SET(ih);
  IOMMUSPEC_SET(addr);
  IOMMUSPEC_SET(pfsid);
  IOMMUSPEC_SET(mip);
  IOMMUSPEC_SET(s);
  IOMMUSPEC_SET(selective);
  IOMMUSPEC_SET(im);
  IOMMUSPEC_SET(iidx);
  IOMMUSPEC_SET(if_);
  IOMMUSPEC_SET(sw);
  IOMMUSPEC_SET(fn);
  IOMMUSPEC_SET(pd);
  IOMMUSPEC_SET(status_data);
  IOMMUSPEC_SET(status_addr);
  IOMMUSPEC_SET(pasid);
  return false;
}

// Sets the fields `args` name, skipping `skip`; an unknown one is an error naming `what`.
template <class T>
void set_fields(T& c, const Args& a, std::initializer_list<std::string_view> skip,
                std::string_view what) {
  for (const auto& arg : a.all()) {
    if (std::find(skip.begin(), skip.end(), arg.key) != skip.end()) continue;
    if (!set_field(c, arg.key, Args::number(arg)))
      throw Error{arg.pos, fmt::format("{} has no field {}", what, arg.key)};
  }
}

// A value given by name (g=page, tt=pass_through, pgtt=fs) or as its number.
uint64_t named(const Args& a, std::string_view k,
               std::initializer_list<std::pair<std::string_view, uint64_t>> names) {
  const Arg* arg = a.find(k);
  if (!arg) throw Error{a.pos(), fmt::format("missing {}=", k)};
  if (const auto* r = std::get_if<scenario::Ref>(&arg->value.v)) {
    for (const auto& [n, v] : names)
      if (r->name == n) return v;
    std::vector<std::string_view> known;
    for (const auto& [n, v] : names)
      known.push_back(n);
    throw Error{arg->pos, fmt::format("{}= is one of {}", k, fmt::join(known, ", "))};
  }
  return Args::number(*arg);
}

// One descriptor from {op=NAME field=value...}.
vtd::QiDesc descriptor_from(const std::vector<Arg>& args, scenario::Pos pos, uint32_t& waits) {
  const Args a(args, pos);
  const std::string op = a.name("op");
  if (op == "raw") return {a.num("w0", 0), a.num("w1", 0), a.num("w2", 0), a.num("w3", 0)};
  auto with = [&](auto d, std::initializer_list<std::pair<std::string_view, uint64_t>> g) {
    if constexpr (requires { d.g; })
      if (a.has("g")) d.g = decltype(d.g)(named(a, "g", g));
    set_fields(d, a, {"op", "g"}, fmt::format("descriptor {}", op));
    return vtd::encode(vtd::QiDescriptor{d});
  };
  using namespace vtd;
  if (op == "cc") return with(ContextCacheInv{}, {{"global", 1}, {"domain", 2}, {"device", 3}});
  if (op == "iotlb") return with(IotlbInv{}, {{"global", 1}, {"domain", 2}, {"page", 3}});
  if (op == "pasid_cache")
    return with(PasidCacheInv{}, {{"domain", 0}, {"pasid", 1}, {"global", 3}});
  if (op == "piotlb") return with(PasidIotlbInv{}, {{"all_in_pasid", 2}, {"page_in_pasid", 3}});
  if (op == "dev_tlb") return with(DevTlbInv{}, {});
  if (op == "pasid_dev_tlb") return with(PasidDevTlbInv{}, {});
  if (op == "iec") return with(IecInv{}, {});
  if (op == "wait") {
    // A status write of a fresh value (Linux qi_submit_sync: QI_IWD_STATUS_WRITE with
    // QI_IN_USE / QI_DONE, dmar.c:1436-1444).
    InvWait w;
    w.sw = true;
    w.status_data = ++waits;
    w.status_addr = kWaitStatus;
    set_fields(w, a, {"op"}, "descriptor wait");
    return vtd::encode(vtd::QiDescriptor{w});
  }
  throw Error{a.find("op")->pos,
              fmt::format("unknown VT-d descriptor '{}' (cc, iotlb, pasid_cache, piotlb, dev_tlb, "
                          "pasid_dev_tlb, iec, wait, raw)",
                          op)};
}

// A paging structure. The builder works in its own memory at the table's addresses as the
// walk sees them (`at`, a GPA for the first stage of a nested PASID); the compiler stores each
// word `offset` further on (`phys`), so entries hold GPAs while RAM holds the pages.
struct VtTable {
  std::unique_ptr<Memory> space;
  std::unique_ptr<vtd::PageTableBuilder> b;
  vtd::Stage stage = vtd::Stage::second;
  int levels = 4;
  uint64_t offset = 0;
};

class VtdCompiler {
public:
  explicit VtdCompiler(const scenario::Scenario& sc) : sc_(sc) {
    out_.setup.area = "vtd";
    if (const auto* h = sc.header("mode")) {
      if (h->values.size() != 1 || (h->values[0] != "legacy" && h->values[0] != "scalable"))
        throw Error{h->pos, "mode = legacy | scalable"};
      out_.setup.legacy = h->values[0] == "legacy";
    }
    out_.setup.features = sc.values("features");
    mem_.add_region(vtd::Layout{}.ram);
  }

  Compiled run() {
    for (const auto& st : sc_.steps)
      step(st);
    return std::move(out_);
  }

private:
  bool legacy() const { return out_.setup.legacy; }

  void step(const scenario::Step& st) {
    check_subject(st);
    const Args a(st.args, st.pos);
    Step s;
    s.number = st.number;
    const Memory before = mem_;
    if (st.op == "table")
      table(st.subject, a);
    else if (st.op == "map")
      map(table_named(st.subject, st.pos), a);
    else if (st.op == "unmap")
      unmap(table_named(st.subject, st.pos), a);
    else if (st.op == "desc")
      desc(table_named(st.subject, st.pos), a);
    else if (st.op == "write") {
      if (!mem_.write64(a.num("pa"), a.num("value")))
        throw Error{st.pos, "write outside RAM or unaligned"};
    } else if (st.op == "context")
      legacy() ? legacy_context(a) : sm_context(a);
    else if (st.op == "pasid")
      pasid(a);
    else if (st.op == "reginv")
      register_invalidation(st, a, s);
    else if (st.op == "inv" || st.op == "wait") {
      interface(st, false);
      s.kind = Step::Kind::submit;
      std::vector<Arg> args = st.args;
      if (st.op == "wait") args.insert(args.begin(), Arg{"op", {scenario::Ref{"wait"}}, {}});
      queue(s, descriptor_from(args, st.pos, waits_));
    } else if (st.op == "invq") {
      interface(st, false);
      s.kind = Step::Kind::submit;
      for (const auto* rec : a.records("descs"))
        queue(s, descriptor_from(*rec, a.find("descs")->pos, waits_));
    } else if (st.op == "resume") {
      interface(st, false);
      s.kind = Step::Kind::resume;
    } else if (st.op == "dma") {
      s.kind = Step::Kind::dma;
      s.dma = dma(a);
    } else if (st.op == "faults") {
      s.kind = Step::Kind::records;
    } else if (st.op == "hwpt_nested" || st.op == "hwpt_invalidate") {
      s.kind = Step::Kind::viommu;
      s.call = viommu_call(st, a);
    } else {
      throw Error{st.pos, fmt::format("unknown vtd step '{}'", st.op)};
    }
    if (s.kind == Step::Kind::write) s.writes = hw::writes_between(before, mem_);
    s.expect = expect_from(st.expect, s.kind);
    out_.steps.push_back(std::move(s));
  }

  // VT-d 6.5.1: register-based invalidation "can be used only when queued-invalidations are
  // not enabled" and "not supported with scalable mode translation"; a scenario uses one
  // interface, and the unit is set up for it (Setup::register_invalidation).
  void interface(const scenario::Step& st, bool registers) {
    if (registers && !legacy())
      throw Error{st.pos, "register-based invalidation is legacy mode only (VT-d 6.5.1)"};
    const int want = registers ? 2 : 1;
    if (interface_ != 0 && interface_ != want)
      throw Error{st.pos, "a scenario invalidates through the queue or through the registers, "
                          "not both (VT-d 6.5.1, 6.5.2)"};
    interface_ = want;
    out_.setup.register_invalidation = registers;
  }

  // `reginv op=cc|iotlb [FIELD=V...]`: CCMD_REG / IVA_REG + IOTLB_REG with the fields of the
  // descriptor of the same name (VT-d 6.5.1.1-2, 11.4.6.1-4).
  void register_invalidation(const scenario::Step& st, const Args& a, Step& s) {
    interface(st, true);
    const std::string op = a.name("op");
    if (op != "cc" && op != "iotlb")
      throw Error{a.find("op")->pos, "reginv op= is cc (CCMD_REG) or iotlb (IOTLB_REG)"};
    s.kind = Step::Kind::reg_inv;
    const vtd::QiDesc d = descriptor_from(st.args, st.pos, waits_);
    s.entries = {d[0], d[1]};
  }

  // Legacy mode queues 128-bit descriptors (words 0 and 1), scalable mode 256-bit ones
  // (IQA.DW, dmar.c:1663-1667).
  void queue(Step& s, const vtd::QiDesc& d) const {
    s.entries.insert(s.entries.end(), d.begin(), d.begin() + (legacy() ? 2 : 4));
  }

  // A request without PASID is a user-mode, non-execute read unless the step says otherwise
  // (README "Device accesses").
  static hw::DmaRequest dma(const Args& a) {
    hw::DmaRequest r;
    r.sid = uint32_t(a.num("sid"));
    if (r.sid > 0xffff) throw Error{a.find("sid")->pos, "sid is a 16-bit source-id"};
    if (a.has("pasid")) r.ssid = uint32_t(a.num("pasid"));
    r.addr = a.num("iova");
    r.write = a.num("write", 0) != 0;
    r.exec = a.num("exec", 0) != 0;
    r.priv = a.num("priv", 0) != 0;
    r.drain = a.num("drain", 1) != 0;
    for (const auto& arg : a.all())
      if (arg.key != "sid" && arg.key != "pasid" && arg.key != "iova" && arg.key != "write" &&
          arg.key != "exec" && arg.key != "priv" && arg.key != "drain")
        throw Error{arg.pos, fmt::format("dma has no argument {}", arg.key)};
    return r;
  }

  // The vIOMMU layer (suites/vtd/README.md): `hwpt_nested H sid= pasid= did=` and
  // `hwpt_invalidate H entries=[{addr= npages= [flags=leaf] [__reserved=]}, ...]`, each entry a
  // struct iommu_hwpt_vtd_s1_invalidate (uapi iommufd.h:676-681).
  static hwc::ViommuCall viommu_call(const scenario::Step& st, const Args& a) {
    hwc::ViommuCall c;
    c.object = st.subject;
    if (st.op == "hwpt_invalidate") {
      c.op = "invalidate";
      for (const auto* rec : a.records("entries")) {
        const Args e(*rec, a.find("entries")->pos);
        for (const auto& arg : e.all())
          if (arg.key != "addr" && arg.key != "npages" && arg.key != "flags" &&
              arg.key != "__reserved")
            throw Error{arg.pos, fmt::format("an entry has no field {}", arg.key)};
        const uint64_t flags = e.has("flags") ? named(e, "flags", {{"leaf", 1}}) : 0;
        const uint64_t reserved = e.num("__reserved", 0);
        if (flags > 0xffffffff || reserved > 0xffffffff)
          throw Error{e.pos(), "flags and __reserved are 32-bit fields"};
        c.entries.push_back({e.num("addr"), e.num("npages"), flags | reserved << 32});
      }
      return c;
    }
    c.op = "hwpt_nested";
    for (const char* k : {"sid", "pasid", "did"})
      c.args[k] = a.num(k);
    for (const auto& arg : a.all())
      if (arg.key != "sid" && arg.key != "pasid" && arg.key != "did")
        throw Error{arg.pos, fmt::format("hwpt_nested has no argument {}", arg.key)};
    return c;
  }

  VtTable& table_named(const std::string& n, scenario::Pos pos) {
    auto it = tables_.find(n);
    if (it == tables_.end()) throw Error{pos, fmt::format("no table named {}", n)};
    return it->second;
  }

  void table(const std::string& n, const Args& a) {
    if (tables_.count(n)) throw Error{a.pos(), fmt::format("table {} is already defined", n)};
    const uint64_t stage = a.num("stage"), levels = a.num("levels", 4);
    if (stage != 1 && stage != 2) throw Error{a.find("stage")->pos, "stage= is 1 or 2"};
    if (levels < 3 || levels > 5 || (stage == 1 && levels == 3))
      throw Error{a.pos(), "levels= is 4 or 5 (second stage: also 3)"};
    if (a.has("at") != a.has("phys")) throw Error{a.pos(), "at= and phys= go together"};
    VtTable t;
    uint64_t base = kTablePool.start + next_table_ * kTableSpan;
    if (a.has("at")) {
      base = a.num("at");
      t.offset = a.num("phys") - base;
    } else if (base + kTableSpan - 1 > kTablePool.last) {
      throw Error{a.pos(), "the table pool is full"};
    } else {
      ++next_table_;
    }
    if (base & 0xfff) throw Error{a.pos(), "at= is 4K aligned"};
    const Range pool{base, base + kTableSpan - 1};
    t.space = std::make_unique<Memory>();
    t.space->add_region(pool);
    t.stage = stage == 1 ? vtd::Stage::first : vtd::Stage::second;
    t.levels = int(levels);
    t.b = std::make_unique<vtd::PageTableBuilder>(*t.space, t.stage, t.levels, pool);
    store(t, a.pos());
    tables_.emplace(n, std::move(t));
  }

  // Copies the table's words into RAM at their storage addresses.
  void store(const VtTable& t, scenario::Pos pos) {
    for (const auto& [gpa, v] : t.space->words())
      if (!mem_.write64(gpa + t.offset, v))
        throw Error{pos, fmt::format("table page {:#x} is stored outside RAM", gpa + t.offset)};
  }

  // The slot of the entry for `iova` at `level`, in the table's own address space.
  std::optional<uint64_t> slot(const VtTable& t, uint64_t iova, int level) const {
    uint64_t table = t.b->root();
    for (int l = t.levels; l > level; --l) {
      const uint64_t w =
          t.space->read64(table + 8ull * vtd::pt_index(iova, unsigned(l))).value_or(0);
      const bool present = t.stage == vtd::Stage::second ? (w & 3) != 0 : (w & 1) != 0;
      if (!present || (l <= 3 && (w & (1ull << 7)))) return std::nullopt; // absent or a leaf
      table = w & 0x000f'ffff'ffff'f000ull;
    }
    return table + 8ull * vtd::pt_index(iova, unsigned(level));
  }

  static int leaf_level(uint64_t size, scenario::Pos pos) {
    for (int l = 1; l <= 3; ++l)
      if (vtd::level_page_size(unsigned(l)) == size) return l;
    throw Error{pos, "size= is 0x1000, 0x200000 or 0x40000000"};
  }

  void map(VtTable& t, const Args& a) {
    const bool first = t.stage == vtd::Stage::first;
    const auto perm = a.flags("perm", first ? std::vector<std::string>{"w", "u", "x"}
                                            : std::vector<std::string>{"r", "w"});
    vtd::Perms p{false, false, false, false, false};
    p.r = first; // every present first-stage page is readable
    for (const auto& f : perm) {
      if (f == "r" && !first)
        p.r = true;
      else if (f == "w")
        p.w = true;
      else if (f == "snp" && !first)
        p.snp = true;
      else if (f == "u" && first)
        p.user = true;
      else if (f == "x" && first)
        p.x = true;
      else
        throw Error{a.find("perm")->pos,
                    fmt::format("unknown {}-stage permission '{}'", first ? "first" : "second", f)};
    }
    const uint64_t iova = a.num("iova"), size = a.num("size", 0x1000);
    if (!t.b->map(iova, a.num("pa"), size, p))
      throw Error{a.pos(), "cannot map: misaligned, overlapping, or the table's pool is full"};
    if (a.has("ad") && a.num("ad") == 0) {
      if (!first) throw Error{a.find("ad")->pos, "ad= is a first-stage flag"};
      const uint64_t at = *slot(t, iova, leaf_level(size, a.pos()));
      t.space->write64(at, *t.space->read64(at) & ~uint64_t(0x60)); // A bit 5, D bit 6
    }
    store(t, a.pos());
  }

  void unmap(VtTable& t, const Args& a) {
    const auto at = slot(t, a.num("iova"), leaf_level(a.num("size", 0x1000), a.pos()));
    if (!at) throw Error{a.pos(), "nothing mapped there"};
    t.space->write64(*at, 0);
    store(t, a.pos());
  }

  void desc(VtTable& t, const Args& a) {
    const uint64_t level = a.num("level");
    if (level < 1 || level > uint64_t(t.levels))
      throw Error{a.find("level")->pos, fmt::format("level= is 1..{}", t.levels)};
    const auto at = slot(t, a.num("iova"), int(level));
    if (!at) throw Error{a.pos(), "the tables above that level do not exist"};
    t.space->write64(*at, a.num("value"));
    store(t, a.pos());
  }

  static void check_sid(const Args& a, uint64_t sid) {
    if (sid > 0xffff || (sid >> 8) >= 16)
      throw Error{a.find("sid")->pos, "sid is on bus 0..15 (the layout's context tables)"};
  }

  // AW of a second-stage table: levels - 2 (iommu.h:895). Without one, AW 2 (48 bits), the
  // width Linux programs for first-stage and pass-through entries too (pasid.c:
  // pasid_set_address_width(pte, iommu->agaw)).
  uint8_t aw_of(const Args& a, std::string_view key, vtd::Stage want) {
    if (!a.has(key)) return 2;
    const VtTable& t = table_of(a, key, want);
    return uint8_t(t.levels - 2);
  }
  const VtTable& table_of(const Args& a, std::string_view key, vtd::Stage want) {
    const VtTable& t = table_named(a.name(key), a.find(key)->pos);
    if (t.stage != want)
      throw Error{a.find(key)->pos, fmt::format("{}= names a {}-stage table", key,
                                                want == vtd::Stage::first ? "first" : "second")};
    return t;
  }

  // Legacy root entry (if absent) and context entry (iommu.h:553-574).
  void legacy_context(const Args& a) {
    const uint64_t sid = a.num("sid");
    check_sid(a, sid);
    const uint64_t bus = sid >> 8, devfn = sid & 0xff;
    const uint64_t ctp = kContextTables + bus * 0x2000;
    const uint64_t root = vtd::Layout{}.root_table + bus * 16;
    if (!(mem_.read64(root).value_or(0) & 1)) {
      const auto w = vtd::encode(vtd::RootEntry{true, ctp});
      mem_.write64(root, w[0]);
      mem_.write64(root + 8, w[1]);
    }
    vtd::ContextEntry e;
    e.present = true;
    e.did = uint16_t(a.num("did", 0));
    e.tt = vtd::TranslationType(
        named(a, "tt", {{"translated", 0}, {"dev_iotlb", 1}, {"pass_through", 2}}));
    e.aw = aw_of(a, "ss", vtd::Stage::second);
    if (a.has("ss")) e.slptptr = table_of(a, "ss", vtd::Stage::second).b->root();
    set_fields(e, a, {"sid", "did", "tt", "ss"}, "the context entry");
    const auto w = vtd::encode(e);
    mem_.write64(ctp + devfn * 16, w[0]);
    mem_.write64(ctp + devfn * 16 + 8, w[1]);
  }

  // Scalable root entry half and context entry (iommu.c:78-96, :506-512): devfn 0x00-0x7f in
  // the lower half's table, 0x80-0xff in the upper half's, 32 bytes an entry.
  void sm_context(const Args& a) {
    const uint64_t sid = a.num("sid");
    check_sid(a, sid);
    const uint64_t bus = sid >> 8, devfn = sid & 0xff;
    const bool upper = devfn >= 0x80;
    const uint64_t ctp = kContextTables + bus * 0x2000 + (upper ? 0x1000 : 0);
    const uint64_t root = vtd::Layout{}.root_table + bus * 16;
    auto re = vtd::decode_sm_root_entry(
        {mem_.read64(root).value_or(0), mem_.read64(root + 8).value_or(0)});
    (upper ? re.upper_present : re.lower_present) = true;
    (upper ? re.uctp : re.lctp) = ctp;
    const auto rw = vtd::encode(re);
    mem_.write64(root, rw[0]);
    mem_.write64(root + 8, rw[1]);
    vtd::SmContextEntry e;
    e.present = true;
    e.pasid_dir_ptr = pasid_dir(uint16_t(sid), a.pos());
    set_fields(e, a, {"sid"}, "the scalable-mode context entry");
    const auto w = vtd::encode(e);
    for (uint64_t i = 0; i < 4; ++i)
      mem_.write64(ctp + (devfn & 0x7f) * 32 + 8 * i, w[i]);
  }

  uint64_t pasid_page(scenario::Pos pos) {
    if (next_pasid_page_ + 0xfff > kPasidPool.last)
      throw Error{pos, "the PASID directory/table pool is full"};
    const uint64_t p = next_pasid_page_;
    next_pasid_page_ += 0x1000;
    return p;
  }
  uint64_t pasid_dir(uint16_t sid, scenario::Pos pos) {
    auto it = dirs_.find(sid);
    if (it != dirs_.end()) return it->second;
    return dirs_[sid] = pasid_page(pos);
  }

  // PASID directory entry (allocating its table) and PASID entry (pasid.h, pasid.c
  // intel_pasid_setup_*): P, PGTT, DID, AW and SLPTPTR from the second-stage table, FLPM and
  // FLPTPTR from the first-stage one.
  void pasid(const Args& a) {
    if (legacy()) throw Error{a.pos(), "pasid entries exist in scalable mode only"};
    const uint64_t sid = a.num("sid"), pasid = a.num("pasid");
    check_sid(a, sid);
    auto dir = dirs_.find(uint16_t(sid));
    if (dir == dirs_.end()) throw Error{a.pos(), "pasid needs a context step for the sid first"};
    if (pasid >= 64 * vtd::pasid_dir_entries(0))
      throw Error{a.find("pasid")->pos, "pasid is below 8192 (PDTS = 0)"};
    const uint64_t de = dir->second + 8ull * vtd::pasid_dir_index(uint32_t(pasid));
    auto pde = vtd::decode_pasid_dir_entry(mem_.read64(de).value_or(0));
    if (!pde.present) {
      pde.present = true;
      pde.pasid_table = pasid_page(a.pos());
      mem_.write64(de, vtd::encode(pde));
    }
    vtd::PasidEntry e;
    e.present = true;
    e.pgtt = vtd::Pgtt(named(a, "pgtt", {{"fs", 1}, {"ss", 2}, {"nested", 3}, {"pt", 4}}));
    e.did = uint16_t(a.num("did", 0));
    e.aw = aw_of(a, "ss", vtd::Stage::second);
    if (a.has("ss")) e.slptptr = table_of(a, "ss", vtd::Stage::second).b->root();
    if (a.has("fs")) {
      const VtTable& t = table_of(a, "fs", vtd::Stage::first);
      e.flptptr = t.b->root();
      e.flpm = t.levels == 5 ? 1 : 0; // iommu.c:816
    }
    set_fields(e, a, {"sid", "pasid", "pgtt", "did", "ss", "fs"}, "the PASID entry");
    const auto w = vtd::encode(e);
    const uint64_t at = pde.pasid_table + 64ull * vtd::pasid_table_index(uint32_t(pasid));
    for (uint64_t i = 0; i < 8; ++i)
      mem_.write64(at + 8 * i, w[i]);
  }

  const scenario::Scenario& sc_;
  Memory mem_;
  std::map<std::string, VtTable> tables_;
  std::map<uint16_t, uint64_t> dirs_; // sid -> PASID directory
  uint64_t next_table_ = 0;
  uint64_t next_pasid_page_ = kPasidPool.start;
  int interface_ = 0; // 1 queued invalidation, 2 registers (interface())
  uint32_t waits_ = 0;
  Compiled out_;
};

constexpr uint64_t bit(unsigned n) {
  return uint64_t(1) << n;
}

} // namespace

Compiled compile_vtd(const scenario::Scenario& sc) {
  return VtdCompiler(sc).run();
}

// Fields of a fault record (format.h FaultRecord): `addr` is FI, `write` is !T.
std::map<std::string, uint64_t> vtd_record_fields(const std::vector<uint64_t>& record) {
  std::map<std::string, uint64_t> f;
  if (record.size() < 2) return f;
  const auto r = vtd::decode_fault_record({record[0], record[1]});
  f["sid"] = r.sid;
  f["addr"] = r.fi;
  f["pp"] = r.pp;
  f["pasid"] = r.pasid;
  f["write"] = r.type == vtd::FaultType::write ? 1 : 0;
  f["reason"] = r.reason;
  return f;
}

std::string vtd_record_name(const std::vector<uint64_t>& record) {
  if (record.size() < 2) return "fault";
  const auto reason = uint8_t(vtd::decode_fault_record({record[0], record[1]}).reason);
  const auto n = vtd::fault_reason_name(reason);
  return n.empty() ? fmt::format("REASON_{:#x}", reason) : std::string(n);
}

// A field is compared only where the model defines it (the outcome's mask: model/vtd/
// machine.cpp fault_record).
bool vtd_field_defined(const hw::DmaOutcome& o, std::string_view k) {
  auto m = [&](size_t w, uint64_t bits) { return w < o.mask.size() && (o.mask[w] & bits); };
  if (k == "addr") return m(0, ~uint64_t(0xfff));
  if (k == "sid") return m(1, 0xffff);
  if (k == "pp") return m(1, bit(31));
  if (k == "reason") return m(1, 0xffull << 32);
  if (k == "pasid") return m(1, 0xfffffull << 40);
  if (k == "write") return m(1, bit(62));
  return false;
}

} // namespace iommuspec::conformance::hwc::detail

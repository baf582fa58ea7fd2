// SMMUv3 traces (conformance/suites/smmuv3/README.md): stage-1 streams over two translation
// tables, with stage-2 and nested streams when the target has them. The world is small on
// purpose: two tables, three streams, an ASID per table, two VMIDs, a handful of IOVAs and
// pages, so that streams share tables and address spaces, IOVAs alias the same page, and a
// remap with no (or the wrong) invalidation leaves a stale entry the model must allow and
// nothing else.
//
// Adversarial configurations (issue 6 "aliasing, tables inside stage-2 holes, loops"):
// - aliasing: two streams on one table (one address space when their VMIDs agree), two IOVAs
//   on one page, invalidations naming another table's ASID;
// - loops: a raw table descriptor pointing back at a table's own root, or at the other
//   table's root (the walk then reads a table as the next level);
// - holes: a nested stream whose stage-1 tables or CD lie in IPA space stage 2 does not map
//   (or stops mapping).
//
// Address spaces are shared the way software may share them: a table has one ASID (T1: 1,
// T2: 2, N: 3), so streams on one table with one VMID are one address space whose TLB
// entries any of them may use (IHI 0070 5.4.1, 3.17; SMMUV3.CACHE.shared). Streams of one
// address space with different tables are a software error with UNPREDICTABLE lookups
// (5.4.1), as are global (nG=0) leaves that differ between address spaces: such leaves are
// written only in traces with a single stream.
#include "trace_areas.h"

#include <map>

namespace iommuspec::generators {
namespace {

using scenario::Arg;

// The memory layout of suites/smmuv3/README.md: translation tables are allocated in step
// order from 0x4100_0000, so the roots of T1 and T2 (written first, 4K granule) are here.
constexpr uint64_t kRootT1 = 0x41000000, kRootT2 = 0x41001000;
constexpr uint64_t kCdTable = 0x40010000; // + SID * 0x1000
// Nested streams: stage-1 tables of N addressed at this IPA, stored at this PA (2 MiB).
constexpr uint64_t kNestedTableIpa = 0x80000000, kNestedTablePa = 0x41e00000;

struct Leaf {
  uint64_t iova, size;
};

// Stage-1 leaves: three pages under one level-3 table, a 2 MiB block beside them, and the
// last page of the 48-bit space (its own path from level 0).
const std::vector<Leaf> kS1Leaves = {{0x10000, 0x1000},
                                     {0x11000, 0x1000},
                                     {0x12000, 0x1000},
                                     {0x200000, 0x200000},
                                     {0xfffffffff000, 0x1000}};
const std::vector<Leaf> kS1LeavesSmall = {{0x10000, 0x1000}, {0x11000, 0x1000}};
const std::vector<uint64_t> kPages = {0x42000000, 0x42001000, 0x42100000};
const std::vector<uint64_t> kBlocks = {0x42200000, 0x42400000};
// Stage 2 (ia=40): IPAs of stage-2-only streams and of nested stage-1 outputs.
const std::vector<uint64_t> kIpas = {0x90000000, 0x90001000};

struct Stream {
  enum class Config { none, s1, s2, nested, abort, bypass } config = Config::none;
  std::string table; // stage-1 table of its CD
  uint64_t asid = 0, vmid = 0;
};

class SmmuGen final : public TraceGen {
public:
  explicit SmmuGen(const TraceOptions& opt) : opt_(opt) {}

  void begin(scenario::Scenario& sc, Picker& p) override {
    sc.id = "fuzz";
    single_ = !opt_.small && p.one_in(3);
    stage2_ = has("stage2") && (opt_.small ? false : p.one_in(3));
    nested_ = stage2_ && has("nested") && p.coin();
    std::vector<std::string> features = {"smmuv3", "stage1"};
    if (stage2_) features.push_back("stage2");
    if (nested_) features.push_back("nested");
    if (has("range_inv") && !opt_.small) features.push_back("range_inv");
    range_ = std::find(features.begin(), features.end(), "range_inv") != features.end();
    sc.headers.push_back({"features", features, {}});
    // Both stage-1 roots first: their addresses are then known (kRootT1, kRootT2).
    for (const char* t : {"T1", "T2"})
      append(sc, make_step("table",
                           {ref("", t), num("stage", 1), ref("granule", "4k"), num("ia", 48)}));
    if (stage2_) begin_stage2(sc, p);
  }

  void action(scenario::Scenario& sc, Picker& p) override {
    switch (p.pick(13)) {
    case 12:
      return remap_and_check(sc, p);
    case 0:
    case 1:
      return install(sc, p);
    case 2:
    case 3:
      return map(sc, p);
    case 4:
      return unmap(sc, p);
    case 5:
      return raw_descriptor(sc, p);
    case 6:
    case 7:
    case 8:
      return invalidate(sc, p);
    case 9:
      return reconfigure(sc, p);
    default:
      return dma(sc, p);
    }
  }

private:
  static uint64_t asid_of(const std::string& table) {
    return table == "T1" ? 1 : table == "T2" ? 2 : 3;
  }
  bool has(const char* f) const { return opt_.features.count(f) != 0; }
  const std::vector<Leaf>& leaves() const { return opt_.small ? kS1LeavesSmall : kS1Leaves; }
  std::vector<uint32_t> sids() const {
    if (single_) return {1};
    return opt_.small ? std::vector<uint32_t>{1, 2} : std::vector<uint32_t>{1, 2, 3};
  }
  std::vector<std::string> tables() const {
    std::vector<std::string> t = {"T1", "T2"};
    if (nested_) t.push_back("N");
    return t;
  }

  // Stage 2: table S (IHI 0070 3.4: stage-2 input is the IPA), the IPAs stage-1 outputs and
  // stage-2-only streams use, and for nested streams the IPA ranges of the stage-1 tables
  // and of each stream's CD page (identity, suites/smmuv3/README.md nested layout).
  void begin_stage2(scenario::Scenario& sc, Picker& p) {
    append(sc, make_step("table", {ref("", "S"), num("stage", 2), ref("granule", "4k"),
                                   num("ia", 40), num("sl0", 1)}));
    for (size_t i = 0; i < kIpas.size(); ++i)
      map_s2(sc, kIpas[i], kPages[i],
             p.coin() ? std::vector<std::string>{"r", "w"} : std::vector<std::string>{"r"});
    if (!nested_) return;
    // A hole is left for the stage-1 tables one time in four: every walk then faults at
    // stage 2 with CLASS=TT (IHI 0070 7.3.12), never reaches memory through stage 1.
    if (!p.one_in(4)) map_s2(sc, kNestedTableIpa, kNestedTablePa, {"r"}, 0x200000);
    append(sc,
           make_step("table", {ref("", "N"), num("stage", 1), ref("granule", "4k"), num("ia", 48),
                               num("at", kNestedTableIpa), num("phys", kNestedTablePa)}));
    for (uint32_t sid : sids())
      if (!p.one_in(4)) map_s2(sc, kCdTable + sid * 0x1000, kCdTable + sid * 0x1000, {"r"});
  }

  void map_s2(scenario::Scenario& sc, uint64_t ipa, uint64_t pa,
              const std::vector<std::string>& perm, uint64_t size = 0x1000) {
    append(sc, make_step("map", {ref("", "S"), num("iova", ipa), num("pa", pa), num("size", size),
                                 flags("perm", perm)}));
  }

  // A stream's CD (stage-1 table, ASID) and STE.
  void install(scenario::Scenario& sc, Picker& p) {
    const uint32_t sid = p.one_of(sids());
    Stream& s = streams_[sid];
    std::vector<Stream::Config> configs = {Stream::Config::s1};
    if (stage2_) configs.push_back(Stream::Config::s2);
    if (nested_) configs.push_back(Stream::Config::nested);
    s.config = p.one_of(configs);
    s.vmid = p.one_of(std::vector<uint64_t>{1, 2});
    if (s.config != Stream::Config::s2) {
      s.table =
          s.config == Stream::Config::nested ? "N" : p.one_of(std::vector<std::string>{"T1", "T2"});
      s.asid = asid_of(s.table);
      append(sc, make_step("cd", {num("sid", sid), ref("tt", s.table), num("asid", s.asid)}));
    }
    write_ste(sc, sid, s);
    // Usually made visible at once (the STE was V=0 and may be cached so, IHI 0070 3.21.3);
    // sometimes left to a later invalidation or to none.
    if (!p.one_in(4))
      append(sc,
             make_step("cmdq",
                       {records("cmds", {{ref("op", "cfgi_ste"), num("sid", sid), num("leaf", 1)},
                                         {ref("op", "sync")}})}));
  }

  void write_ste(scenario::Scenario& sc, uint32_t sid, const Stream& s) {
    std::vector<Arg> args = {num("sid", sid)};
    switch (s.config) {
    case Stream::Config::s1:
      args.push_back(ref("config", "s1"));
      break;
    case Stream::Config::s2:
      args.insert(args.end(),
                  {ref("config", "s2"), ref("s2", "S"), num("vmid", s.vmid), num("s2_r", 1)});
      break;
    case Stream::Config::nested:
      args.insert(args.end(),
                  {ref("config", "nested"), ref("s2", "S"), num("vmid", s.vmid), num("s2_r", 1)});
      break;
    case Stream::Config::abort:
      args.push_back(ref("config", "abort"));
      break;
    case Stream::Config::bypass:
      args.push_back(ref("config", "bypass"));
      break;
    case Stream::Config::none:
      args.insert(args.end(), {ref("config", "s1"), num("v", 0)});
      break;
    }
    append(sc, make_step("ste", args));
  }

  // A stream changes configuration: another table or ASID in its CD, abort, bypass, V=0.
  void reconfigure(scenario::Scenario& sc, Picker& p) {
    const uint32_t sid = p.one_of(sids());
    Stream& s = streams_[sid];
    switch (p.pick(4)) {
    case 0:
      if (s.config == Stream::Config::s1) {
        s.table = p.one_of(std::vector<std::string>{"T1", "T2"});
        s.asid = asid_of(s.table);
        append(sc, make_step("cd", {num("sid", sid), ref("tt", s.table), num("asid", s.asid)}));
        return;
      }
      [[fallthrough]];
    case 1:
      s.config = Stream::Config::abort;
      break;
    case 2:
      s.config = Stream::Config::bypass;
      break;
    default:
      s.config = Stream::Config::none;
      break;
    }
    write_ste(sc, sid, s);
  }

  // A leaf where none is: page or block, fresh or aliasing a page another IOVA maps.
  void map(scenario::Scenario& sc, Picker& p) {
    const std::string t = p.one_of(tables());
    const Leaf l = p.one_of(leaves());
    // Below a level-2 entry rewritten raw, the compiler's tables are no longer where it put
    // them: the low pages of that table are left alone.
    if (!tables_.usable(t, l.iova)) return dma(sc, p);
    if (tables_.has(t, l.iova)) return remap(sc, p, t, l);
    append(sc, map_step(t, l, p));
    tables_.mapped(t, l.iova, l.size);
  }

  scenario::Step map_step(const std::string& t, const Leaf& l, Picker& p) {
    uint64_t pa = l.size == 0x1000 ? p.one_of(kPages) : p.one_of(kBlocks);
    // A nested stream's stage-1 output is an IPA (stage 2 maps kIpas).
    if (t == "N") pa = l.size == 0x1000 ? p.one_of(kIpas) : 0x90200000;
    std::vector<Arg> args = {ref("", t), num("iova", l.iova), num("pa", pa), num("size", l.size)};
    if (opt_.small) return make_step("map", args);
    if (p.one_in(3)) args.push_back(ref("perm", "r"));
    if (single_ && p.one_in(4)) args.push_back(num("ng", 0)); // any ASID's NH_VA removes it
    return make_step("map", args);
  }

  // The break-before-make a driver does (unmap, then map elsewhere), with or without the
  // invalidation between: the old translation may stay until an invalidation covers it.
  void remap(scenario::Scenario& sc, Picker& p, const std::string& t, const Leaf& l) {
    append(sc, make_step("unmap", {ref("", t), num("iova", l.iova), num("size", l.size)}));
    if (p.coin()) invalidate(sc, p);
    append(sc, map_step(t, l, p));
  }

  // What a driver does to change a mapping a device uses (break, make, invalidate) with an
  // access before and after: the invalidation is the stream's own (NH_VA of its ASID and
  // the page, or its whole ASID), another ASID's, or missing. After a right one and its
  // CMD_SYNC only the new page may be reached (IHI 0070 4.4.2.4, 4.6.3).
  void remap_and_check(scenario::Scenario& sc, Picker& p) {
    std::vector<uint32_t> live;
    for (const auto& [sid, s] : streams_)
      if (s.config == Stream::Config::s1 || s.config == Stream::Config::nested) live.push_back(sid);
    if (live.empty()) return install(sc, p);
    const uint32_t sid = p.one_of(live);
    const Stream& s = streams_[sid];
    const Leaf l = p.one_of(leaves());
    if (!tables_.usable(s.table, l.iova)) return dma(sc, p);
    if (!tables_.has(s.table, l.iova)) {
      append(sc, map_step(s.table, l, p));
      tables_.mapped(s.table, l.iova, l.size);
    }
    const std::vector<Arg> access = {num("sid", sid), num("iova", l.iova)};
    append(sc, make_step("dma", access));
    append(sc, make_step("unmap", {ref("", s.table), num("iova", l.iova), num("size", l.size)}));
    append(sc, map_step(s.table, l, p));
    std::vector<Arg> cmd;
    switch (p.pick(4)) {
    case 0:
      cmd = {ref("op", "tlbi_nh_va"), num("asid", s.asid), num("addr", l.iova), num("leaf", 1)};
      break;
    case 1:
      cmd = {ref("op", "tlbi_nh_asid"), num("asid", s.asid)};
      break;
    case 2:
      cmd = {ref("op", "tlbi_nh_va"), num("asid", s.asid % 3 + 1), num("addr", l.iova),
             num("leaf", 1)};
      break;
    default:
      break;
    }
    if (!cmd.empty()) {
      if (stage2_) cmd.push_back(num("vmid", s.vmid));
      append(sc, make_step("cmdq", {records("cmds", {cmd, {ref("op", "sync")}})}));
    }
    append(sc, make_step("dma", access));
  }

  void unmap(scenario::Scenario& sc, Picker& p) {
    const std::string t = p.one_of(tables());
    auto& m = tables_.leaves(t);
    if (m.empty()) return map(sc, p);
    auto it = std::next(m.begin(), long(p.pick(m.size())));
    if (!tables_.usable(t, it->first)) return dma(sc, p);
    append(sc, make_step("unmap", {ref("", t), num("iova", it->first), num("size", it->second)}));
    m.erase(it);
  }

  // A raw descriptor in a slot whose tables exist: a loop back to a table's own root, a
  // jump into the other table, an invalid entry, or a level-3 Reserved type (0b01: IHI 0070
  // defers to the Arm ARM, where it is a translation fault). Only the level-3 table of the
  // low pages and the level-2 table above it are known to exist once such a page was mapped.
  void raw_descriptor(scenario::Scenario& sc, Picker& p) {
    const std::string t = p.one_of(std::vector<std::string>{"T1", "T2"});
    if (!tables_.raw_ok(t)) return dma(sc, p);
    const uint64_t level = p.one_of(std::vector<uint64_t>{2, 3});
    const uint64_t iova = p.one_of(std::vector<uint64_t>{0x10000, 0x11000, 0x12000});
    std::vector<uint64_t> values = {0};
    if (level == 2) {
      values.push_back(kRootT1 | 3); // table descriptor: a loop (T1) or a jump (T2)
      values.push_back(kRootT2 | 3);
    } else {
      values.push_back(kPages[0] | 1);     // Reserved at level 3
      values.push_back(kPages[2] | 0x703); // page, AF=1, Inner Shareable
    }
    const uint64_t value = p.one_of(values);
    append(sc, make_step("desc", {ref("", t), num("iova", iova), num("level", level),
                                  num("value", value)}));
    if (level == 2)
      tables_.raw_table_entry(t);
    else
      tables_.raw_leaf(t, iova, value);
  }

  std::vector<Arg> command(Picker& p) {
    const uint64_t asid = p.one_of(std::vector<uint64_t>{1, 2, 3});
    const uint64_t vmid = p.one_of(std::vector<uint64_t>{1, 2, 3});
    const uint32_t sid = p.one_of(sids());
    const Leaf l = p.one_of(leaves());
    const uint64_t addr = l.iova + (l.size > 0x1000 && p.coin() ? 0x1000 : 0);
    switch (p.pick(stage2_ ? 13 : 11)) {
    case 0:
    case 1:
    case 2: {
      std::vector<Arg> c = {ref("op", "tlbi_nh_va"), num("asid", asid), num("addr", addr),
                            num("leaf", p.coin() ? 1 : 0)};
      if (nested_ || stage2_) c.push_back(num("vmid", vmid));
      if (range_ && p.coin()) // IHI 0070 4.4.1.1: TG=4K, NUM+1 pages of 2^SCALE, TTL 3
        c.insert(c.end(), {num("tg", 1), num("num", p.pick(3)), num("scale", p.pick(2)),
                           num("ttl", p.coin() ? 3 : 0)});
      return c;
    }
    case 3:
      return {ref("op", "tlbi_nh_vaa"), num("addr", addr), num("leaf", 1)};
    case 4:
      return {ref("op", "tlbi_nh_asid"), num("asid", asid)};
    case 5:
      return {ref("op", "tlbi_nh_all"), num("vmid", stage2_ ? vmid : 0)};
    case 6:
      return {ref("op", "tlbi_nsnh_all")};
    case 7:
      return {ref("op", "cfgi_ste"), num("sid", sid), num("leaf", 1)};
    case 8:
      return {ref("op", "cfgi_cd"), num("sid", sid), num("ssid", 0), num("leaf", 1)};
    case 9:
      return {ref("op", "cfgi_all")};
    case 10:
      // A Reserved opcode: CERROR_ILL and the queue stops (IHI 0070 4.1.3, 7.1).
      return {ref("op", "raw"), num("w0", p.one_of(std::vector<uint64_t>{0x0, 0x90})),
              num("w1", 0)};
    case 11:
      return {ref("op", "tlbi_s2_ipa"), num("vmid", vmid), num("addr", p.one_of(kIpas)),
              num("leaf", 1)};
    default:
      return {ref("op", "tlbi_s12_vmall"), num("vmid", vmid)};
    }
  }

  // One batch of 1..3 commands, usually ending with CMD_SYNC (IHI 0070 4.6.3: without it
  // nothing is guaranteed to have completed). After a command error, usually `resume`.
  void invalidate(scenario::Scenario& sc, Picker& p) {
    std::vector<std::vector<Arg>> cmds;
    const size_t n = opt_.small ? 1 : 1 + p.pick(3);
    bool bad = false;
    for (size_t i = 0; i < n; ++i) {
      cmds.push_back(command(p));
      bad = bad || std::get<scenario::Ref>(cmds.back().front().value.v).name == "raw";
    }
    if (opt_.small || !p.one_in(4)) cmds.push_back({ref("op", "sync")});
    append(sc, make_step("cmdq", {records("cmds", cmds)}));
    if (bad && !p.one_in(4)) append(sc, make_step("resume", {}));
  }

  void dma(scenario::Scenario& sc, Picker& p) {
    const uint32_t sid = p.one_of(sids());
    const Stream& s = streams_[sid];
    std::vector<uint64_t> iovas;
    if (s.config == Stream::Config::s2) {
      iovas = kIpas;
      iovas.push_back(0xa0000000); // unmapped at stage 2
    } else {
      for (const auto& l : leaves())
        iovas.push_back(l.iova);
      iovas.push_back(0x13000);  // never mapped
      iovas.push_back(0x400000); // beyond the block
    }
    uint64_t iova = p.one_of(iovas);
    std::vector<Arg> args = {num("sid", sid), num("iova", iova)};
    if (opt_.small) return append(sc, make_step("dma", args));
    args.back() = num("iova", iova + p.one_of(std::vector<uint64_t>{0, 0x8, 0xff8}));
    if (p.one_in(3)) args.push_back(num("write", 1));
    append(sc, make_step("dma", args));
  }

  TraceOptions opt_;
  bool single_ = false, stage2_ = false, nested_ = false, range_ = false;
  std::map<uint32_t, Stream> streams_;
  Tables tables_;
};

} // namespace

std::unique_ptr<TraceGen> make_smmuv3_gen(const TraceOptions& opt) {
  return std::make_unique<SmmuGen>(opt);
}

} // namespace iommuspec::generators

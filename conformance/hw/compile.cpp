#include "hw/compile.h"

#include "hw/compile_args.h"
#include "smmuv3/clauses.h"
#include "smmuv3/format.h"
#include "smmuv3/machine.h"
#include "smmuv3/walk.h"
#include "vtd/clauses.h"

#include <algorithm>
#include <fmt/format.h>
#include <functional>
#include <set>

namespace iommuspec::conformance::hwc {

using scenario::Arg;
using scenario::Diagnostic;
using scenario::Value;

bool is_hw_area(std::string_view area) {
  return area == "smmuv3" || area == "vtd";
}

namespace detail {

// ---- Expectations ----------------------------------------------------------------------------

Pattern pattern_from(const std::vector<Arg>& args, const std::string& name, scenario::Pos pos) {
  Pattern p;
  std::string n = name;
  for (const auto& a : args) {
    if (a.key == "pa") {
      p.pa = Args::number(a);
    } else if (a.key == "event" || a.key == "fault") {
      const auto* r = std::get_if<scenario::Ref>(&a.value.v);
      if (!r) throw Error{a.pos, fmt::format("{}= takes a name", a.key)};
      n = r->name;
    } else if (a.key == "abort") {
      n = "abort";
    } else if (const auto* r = std::get_if<scenario::Ref>(&a.value.v); r && a.key == "class") {
      // Event CLASS by name ([QV] SMMU_CLASS_CD / _TT / _IN).
      static const std::map<std::string, uint64_t, std::less<>> classes = {
          {"cd", 0}, {"tt", 1}, {"in", 2}};
      auto it = classes.find(r->name);
      if (it == classes.end()) throw Error{a.pos, "class= is cd, tt or in"};
      p.fields["class"] = it->second;
    } else {
      p.fields[a.key] = Args::number(a);
    }
  }
  if (n.empty() && p.pa) n = "ok";
  if (n.empty()) throw Error{pos, "an outcome needs pa=, event=/fault= or abort=1"};
  if (n == "ok") {
    p.kind = hw::DmaOutcome::Kind::ok;
  } else if (n == "abort") {
    p.kind = hw::DmaOutcome::Kind::abort;
  } else {
    p.kind = hw::DmaOutcome::Kind::fault;
    p.name = n;
  }
  return p;
}

Expect expect_from(const scenario::Expect& e, Step::Kind kind) {
  Expect x;
  if (!e.present) return x;
  x.present = true;
  x.name = e.errno_name;
  if (kind != Step::Kind::dma) {
    for (const auto& a : e.pins)
      x.values[a.key] = Args::number(a);
    return x;
  }
  if (x.name == "any") {
    const Arg* list = nullptr;
    for (const auto& a : e.pins)
      if (a.key == "outcomes") list = &a;
    if (!list || !std::holds_alternative<scenario::List>(list->value.v))
      throw Error{e.pos, "'-> any' takes outcomes=[{pa=..}, {event=..}, ...]"};
    for (const auto& item : std::get<scenario::List>(list->value.v).items) {
      const auto* rec = std::get_if<scenario::Record>(&item);
      if (!rec) throw Error{list->pos, "outcomes= lists records {pa=..} / {event=..}"};
      x.outcomes.push_back(pattern_from(rec->args, "", list->pos));
    }
    return x;
  }
  x.outcomes.push_back(pattern_from(e.pins, x.name, e.pos));
  return x;
}

void check_subject(const scenario::Step& st) {
  const bool table = st.op == "table" || st.op == "map" || st.op == "unmap" || st.op == "desc";
  const bool object = st.op == "viommu" || st.op == "vdevice" || st.op == "viommu_invalidate" ||
                      st.op == "hwpt_nested" || st.op == "hwpt_invalidate" || st.op == "vevents";
  const bool needs = table || object;
  if (needs && st.subject.empty())
    throw Error{st.pos, fmt::format("{} needs a {} name: `{} {} ...`", st.op,
                                    table ? "table" : "vIOMMU or HWPT", st.op, table ? "T" : "V")};
  if (!needs && !st.subject.empty())
    throw Error{st.pos, fmt::format("{} takes no name (unexpected '{}')", st.op, st.subject)};
}

} // namespace detail

namespace {

using detail::Args;
using detail::Error;
using detail::expect_from;

// ---- SMMUv3 ----------------------------------------------------------------------------------

namespace sm = smmuv3;

template <class T>
bool set_field(T& c, std::string_view k, uint64_t v) {
  IOMMUSPEC_SET(v);
  IOMMUSPEC_SET(s1_fmt);
  IOMMUSPEC_SET(s1_context_ptr);
  IOMMUSPEC_SET(s1_cd_max);
  IOMMUSPEC_SET(s1_dss);
  IOMMUSPEC_SET(s1_cir);
  IOMMUSPEC_SET(s1_cor);
  IOMMUSPEC_SET(s1_csh);
  IOMMUSPEC_SET(mev);
  IOMMUSPEC_SET(s2_fwb);
  IOMMUSPEC_SET(s1_stalld);
  IOMMUSPEC_SET(eats);
  IOMMUSPEC_SET(strw);
  IOMMUSPEC_SET(shcfg);
  IOMMUSPEC_SET(s2_vmid);
  IOMMUSPEC_SET(s2_t0sz);
  IOMMUSPEC_SET(s2_sl0);
  IOMMUSPEC_SET(s2_ir0);
  IOMMUSPEC_SET(s2_or0);
  IOMMUSPEC_SET(s2_sh0);
  IOMMUSPEC_SET(s2_tg);
  IOMMUSPEC_SET(s2_ps);
  IOMMUSPEC_SET(s2_aa64);
  IOMMUSPEC_SET(s2_endi);
  IOMMUSPEC_SET(s2_affd);
  IOMMUSPEC_SET(s2_ptw);
  IOMMUSPEC_SET(s2_hd);
  IOMMUSPEC_SET(s2_ha);
  IOMMUSPEC_SET(s2_s);
  IOMMUSPEC_SET(s2_r);
  IOMMUSPEC_SET(s2_ttb);
  IOMMUSPEC_SET(t0sz);
  IOMMUSPEC_SET(tg0);
  IOMMUSPEC_SET(ir0);
  IOMMUSPEC_SET(or0);
  IOMMUSPEC_SET(sh0);
  IOMMUSPEC_SET(epd0);
  IOMMUSPEC_SET(endi);
  IOMMUSPEC_SET(t1sz);
  IOMMUSPEC_SET(tg1);
  IOMMUSPEC_SET(epd1);
  IOMMUSPEC_SET(ips);
  IOMMUSPEC_SET(affd);
  IOMMUSPEC_SET(tbi0);
  IOMMUSPEC_SET(tbi1);
  IOMMUSPEC_SET(aa64);
  IOMMUSPEC_SET(hd);
  IOMMUSPEC_SET(ha);
  IOMMUSPEC_SET(s);
  IOMMUSPEC_SET(r);
  IOMMUSPEC_SET(a);
  IOMMUSPEC_SET(aset);
  IOMMUSPEC_SET(asid);
  IOMMUSPEC_SET(nscfg0);
  IOMMUSPEC_SET(had0);
  IOMMUSPEC_SET(ttb0);
  IOMMUSPEC_SET(nscfg1);
  IOMMUSPEC_SET(had1);
  IOMMUSPEC_SET(ttb1);
  IOMMUSPEC_SET(mair0);
  IOMMUSPEC_SET(mair1);
  IOMMUSPEC_SET(ssec);
  IOMMUSPEC_SET(ssv);
  IOMMUSPEC_SET(ssid);
  IOMMUSPEC_SET(sid);
  IOMMUSPEC_SET(size);
  IOMMUSPEC_SET(addr);
  IOMMUSPEC_SET(leaf);
  IOMMUSPEC_SET(range);
  IOMMUSPEC_SET(vmid);
  IOMMUSPEC_SET(num);
  IOMMUSPEC_SET(scale);
  IOMMUSPEC_SET(ttl);
  IOMMUSPEC_SET(tg);
  IOMMUSPEC_SET(global);
  IOMMUSPEC_SET(grpid);
  IOMMUSPEC_SET(resp);
  IOMMUSPEC_SET(stag);
  IOMMUSPEC_SET(cs);
  IOMMUSPEC_SET(msh);
  IOMMUSPEC_SET(msi_attr);
  IOMMUSPEC_SET(msi_data);
  IOMMUSPEC_SET(msi_addr);
  return false;
}

std::optional<sm::Command> command_named(std::string_view op) {
  static const std::map<std::string_view, sm::Command, std::less<>> ops = {
      {"prefetch_config", sm::CmdPrefetchConfig{}},
      {"prefetch_addr", sm::CmdPrefetchAddr{}},
      {"cfgi_ste", sm::CmdCfgiSte{}},
      {"cfgi_ste_range", sm::CmdCfgiSteRange{}},
      {"cfgi_all", sm::cfgi_all()},
      {"cfgi_cd", sm::CmdCfgiCd{}},
      {"cfgi_cd_all", sm::CmdCfgiCdAll{}},
      {"tlbi_nh_all", sm::CmdTlbiNhAll{}},
      {"tlbi_nh_asid", sm::CmdTlbiNhAsid{}},
      {"tlbi_nh_va", sm::CmdTlbiNhVa{}},
      {"tlbi_nh_vaa", sm::CmdTlbiNhVaa{}},
      {"tlbi_el3_all", sm::CmdTlbiEl3All{}},
      {"tlbi_el2_all", sm::CmdTlbiEl2All{}},
      {"tlbi_el2_asid", sm::CmdTlbiEl2Asid{}},
      {"tlbi_el2_va", sm::CmdTlbiEl2Va{}},
      {"tlbi_el2_vaa", sm::CmdTlbiEl2Vaa{}},
      {"tlbi_s12_vmall", sm::CmdTlbiS12Vmall{}},
      {"tlbi_s2_ipa", sm::CmdTlbiS2Ipa{}},
      {"tlbi_nsnh_all", sm::CmdTlbiNsnhAll{}},
      {"atc_inv", sm::CmdAtcInv{}},
      {"pri_resp", sm::CmdPriResp{}},
      {"resume", sm::CmdResume{}},
      {"sync", sm::CmdSync{}},
  };
  auto it = ops.find(op);
  if (it == ops.end()) return std::nullopt;
  return it->second;
}

// One command from {op=NAME field=value...}.
sm::Cmd2 command_from(const std::vector<Arg>& args, scenario::Pos pos) {
  const Args a(args, pos);
  const std::string op = a.name("op");
  if (op == "raw") return {a.num("w0", 0), a.num("w1", 0)};
  auto c = command_named(op);
  if (!c) throw Error{a.find("op")->pos, fmt::format("unknown SMMUv3 command '{}'", op)};
  for (const auto& arg : args) {
    if (arg.key == "op") continue;
    const uint64_t v = Args::number(arg);
    const bool done = std::visit([&](auto& cmd) { return set_field(cmd, arg.key, v); }, *c);
    if (!done) throw Error{arg.pos, fmt::format("command {} has no field {}", op, arg.key)};
  }
  return sm::encode(*c);
}

struct SmTable {
  sm::PageTableBuilder b;
  int stage;
  sm::Granule granule;
  unsigned ia;
  sm::S2Config s2; // stage 2: the configuration its STE fields come from
};

class SmCompiler {
public:
  explicit SmCompiler(const scenario::Scenario& sc) : sc_(sc) {
    mem_.add_region(lay_.ram);
    if (const auto* h = sc.header("evtq_log2")) {
      if (h->values.size() != 1) throw Error{h->pos, "evtq_log2 = N"};
      out_.setup.evtq_log2 = unsigned(std::stoul(h->values[0], nullptr, 0));
      if (out_.setup.evtq_log2 > 8) throw Error{h->pos, "evtq_log2 is at most 8"};
    }
    out_.setup.area = "smmuv3";
    out_.setup.features = sc.values("features");
    substreams_ = std::ranges::count(out_.setup.features, "substreams") > 0;
    stream_table(sc);
  }

  Compiled run() {
    for (const auto& st : sc_.steps)
      step(st);
    return std::move(out_);
  }

private:
  bool substreams_ = false; // the feature: STEs get S1CDMax = 6 (64 CDs), else 0

  void step(const scenario::Step& st) {
    const Args a(st.args, st.pos);
    Step s;
    s.number = st.number;
    const Memory before = mem_;
    detail::check_subject(st);
    if (st.op == "table")
      table(st.subject, a);
    else if (st.op == "map")
      map(table_named(st.subject, st.pos), a);
    else if (st.op == "unmap")
      unmap(table_named(st.subject, st.pos), a);
    else if (st.op == "desc")
      desc(table_named(st.subject, st.pos), a);
    else if (st.op == "ste")
      ste(a);
    else if (st.op == "cd")
      cd(a);
    else if (st.op == "l1std")
      l1std(a);
    else if (st.op == "l1cd")
      l1cd(a);
    else if (st.op == "write") {
      if (!mem_.write64(a.num("pa"), a.num("value")))
        throw Error{st.pos, "write outside RAM or unaligned"};
    } else if (st.op == "cmd" || st.op == "sync") {
      s.kind = Step::Kind::submit;
      std::vector<Arg> args = st.args;
      if (st.op == "sync") args.insert(args.begin(), Arg{"op", Value{scenario::Ref{"sync"}}, {}});
      const auto w = command_from(args, st.pos);
      s.entries.assign(w.begin(), w.end());
    } else if (st.op == "cmdq") {
      s.kind = Step::Kind::submit;
      for (const auto* rec : a.records("cmds")) {
        const auto w = command_from(*rec, a.find("cmds")->pos);
        s.entries.insert(s.entries.end(), w.begin(), w.end());
      }
    } else if (st.op == "resume") {
      s.kind = Step::Kind::resume;
    } else if (st.op == "dma") {
      s.kind = Step::Kind::dma;
      s.dma.sid = uint32_t(a.num("sid"));
      if (a.has("ssid")) s.dma.ssid = uint32_t(a.num("ssid"));
      if (s.dma.ssid && !substreams_)
        throw Error{a.find("ssid")->pos, "an access with a SubstreamID needs the feature "
                                         "substreams"};
      s.dma.addr = a.num("iova");
      s.dma.write = a.num("write", 0) != 0;
      s.dma.exec = a.num("exec", 0) != 0;
      s.dma.priv = a.num("priv", 1) != 0;
      s.dma.drain = a.num("drain", 1) != 0;
      for (const auto& arg : st.args)
        if (arg.key != "sid" && arg.key != "ssid" && arg.key != "iova" && arg.key != "write" &&
            arg.key != "exec" && arg.key != "priv" && arg.key != "drain")
          throw Error{arg.pos, fmt::format("dma has no argument {}", arg.key)};
    } else if (st.op == "events") {
      s.kind = Step::Kind::records;
    } else if (st.op == "vevents") {
      s.kind = Step::Kind::records; // the vIOMMU's vEVENTQ
      s.call.op = "vevents";
      s.call.object = st.subject;
    } else if (st.op == "viommu" || st.op == "vdevice" || st.op == "viommu_invalidate") {
      s.kind = Step::Kind::viommu;
      s.call = viommu_call(st, a);
    } else {
      throw Error{st.pos, fmt::format("unknown smmuv3 step '{}'", st.op)};
    }
    if (s.kind == Step::Kind::write) s.writes = hw::writes_between(before, mem_);
    s.expect = expect_from(st.expect, s.kind);
    out_.steps.push_back(std::move(s));
  }

  // The vIOMMU layer (suites/smmuv3/README.md): `viommu V vmid=N`, `vdevice V vsid=X sid=Y`,
  // `viommu_invalidate V cmds=[...]` (each command one uAPI entry).
  hwc::ViommuCall viommu_call(const scenario::Step& st, const Args& a) {
    hwc::ViommuCall c;
    c.object = st.subject;
    if (st.op == "viommu_invalidate") {
      c.op = "invalidate";
      for (const auto* rec : a.records("cmds")) {
        const auto w = command_from(*rec, a.find("cmds")->pos);
        c.entries.push_back({w[0], w[1]});
      }
      return c;
    }
    c.op = st.op;
    const std::vector<std::string_view> keys = st.op == "viommu"
                                                   ? std::vector<std::string_view>{"vmid"}
                                                   : std::vector<std::string_view>{"vsid", "sid"};
    for (const auto& k : keys)
      c.args[std::string(k)] = a.num(k);
    for (const auto& arg : a.all())
      if (std::find(keys.begin(), keys.end(), arg.key) == keys.end())
        throw Error{arg.pos, fmt::format("{} has no argument {}", st.op, arg.key)};
    return c;
  }

  SmTable& table_named(const std::string& n, scenario::Pos pos) {
    auto it = tables_.find(n);
    if (it == tables_.end()) throw Error{pos, fmt::format("no table named {}", n)};
    return it->second;
  }

  static sm::Granule granule(const Args& a) {
    const std::string g = a.name("granule", "g4k");
    if (g == "4k" || g == "g4k") return sm::Granule::g4k;
    if (g == "16k") return sm::Granule::g16k;
    if (g == "64k") return sm::Granule::g64k;
    throw Error{a.find("granule")->pos, "granule= is 4k, 16k or 64k"};
  }

  // Each table gets its own 1 MiB of the table pool (or of `at`, stored at `phys`).
  void table(const std::string& n, const Args& a) {
    if (tables_.count(n)) throw Error{a.pos(), fmt::format("table {} is already defined", n)};
    const uint64_t stage = a.num("stage");
    if (stage != 1 && stage != 2) throw Error{a.find("stage")->pos, "stage= is 1 or 2"};
    const sm::Granule g = granule(a);
    const unsigned ia = unsigned(a.num("ia", 48));
    if (ia < 25 || ia > 52) throw Error{a.pos(), "ia= is between 25 and 52 bits"};
    uint64_t base = next_pool_, offset = 0;
    if (a.has("at") != a.has("phys")) throw Error{a.pos(), "at= and phys= go together"};
    if (a.has("at")) {
      base = a.num("at");
      offset = a.num("phys") - base;
    } else {
      if (next_pool_ + 0x100000 > 0x42000000) throw Error{a.pos(), "the table pool is full"};
      next_pool_ += 0x100000;
    }
    const Range pool{base, base + 0xfffff};
    sm::S2Config s2;
    if (stage == 2) {
      s2.granule = g;
      s2.s2t0sz = uint8_t(64 - ia);
      s2.ps_bits = 48;
      if (a.has("sl0")) {
        s2.s2sl0 = uint8_t(a.num("sl0"));
      } else {
        // The smallest start level with at most 16 concatenated tables (format.h geometry).
        for (uint8_t sl0 = 0; sl0 < 4; ++sl0) {
          s2.s2sl0 = sl0;
          if (sm::s2_config_valid(s2)) break;
        }
      }
      if (!sm::s2_config_valid(s2)) throw Error{a.pos(), "no valid stage-2 geometry for ia/sl0"};
    }
    Memory& m = mem_;
    auto b = stage == 1 ? sm::PageTableBuilder::stage1(m, pool, g, ia)
                        : sm::PageTableBuilder::stage2(m, pool, s2);
    b.set_placement_offset(offset); // the root is only reserved, so placing it now suffices
    tables_.emplace(n, SmTable{std::move(b), int(stage), g, ia, s2});
  }

  void map(SmTable& t, const Args& a) {
    const auto perm = a.flags("perm", t.stage == 1 ? std::vector<std::string>{"w"}
                                                   : std::vector<std::string>{"r", "w"});
    sm::Perms p;
    p.read = t.stage == 1;
    p.write = false;
    p.exec = false;
    p.unpriv = false;
    for (const auto& f : perm) {
      if (f == "r")
        p.read = true;
      else if (f == "w")
        p.write = true;
      else if (f == "x")
        p.exec = true;
      else if (f == "u" && t.stage == 1)
        p.unpriv = true;
      else
        throw Error{a.find("perm")->pos, fmt::format("unknown permission '{}'", f)};
    }
    const uint64_t iova = a.num("iova"), size = a.num("size", 0x1000);
    if (!t.b.map(iova, a.num("pa"), size, p, a.num("af", 1) != 0))
      throw Error{a.pos(), "cannot map: misaligned, overlapping, out of range, or no such "
                           "leaf size at any level"};
    if (a.has("ng") && a.num("ng") == 0 && t.stage == 1) {
      const int level = leaf_level(t, size);
      const uint64_t at = *t.b.slot(iova, level) + t.b.placement_offset();
      mem_.write64(at, *mem_.read64(at) & ~(uint64_t(1) << 11)); // nG = bit 11 (format.h)
    }
  }

  static int leaf_level(const SmTable& t, uint64_t size) {
    for (int l = 0; l <= 3; ++l)
      if ((uint64_t(1) << sm::level_shift(t.granule, l)) == size) return l;
    return 3;
  }

  void unmap(SmTable& t, const Args& a) {
    const uint64_t iova = a.num("iova"), size = a.num("size", 0x1000);
    const auto at = t.b.slot(iova, leaf_level(t, size));
    if (!at) throw Error{a.pos(), "nothing mapped there"};
    mem_.write64(*at + t.b.placement_offset(), 0);
  }

  void desc(SmTable& t, const Args& a) {
    const auto at = t.b.slot(a.num("iova"), int(a.num("level")));
    if (!at) throw Error{a.pos(), "the tables above that level do not exist"};
    mem_.write64(*at + t.b.placement_offset(), a.num("value"));
  }

  // STE defaults: V, the config, S1ContextPtr = the stream's CD table (S1CDMax 6, S1DSS =
  // use CD 0), stage 2 from the table, S2R and S2AA64 set; then named overrides.
  void ste(const Args& a) {
    const uint64_t sid = a.num("sid");
    if (sid >= 256) throw Error{a.find("sid")->pos, "sid is below 256 (the stream table)"};
    const uint64_t at = ste_slot(sid, a);
    sm::Ste e;
    e.v = true;
    const std::string cfg = a.name("config");
    static const std::map<std::string, sm::StreamConfig, std::less<>> cfgs = {
        {"abort", sm::StreamConfig::abort},
        {"bypass", sm::StreamConfig::bypass},
        {"s1", sm::StreamConfig::s1_trans},
        {"s2", sm::StreamConfig::s2_trans},
        {"nested", sm::StreamConfig::nested}};
    auto it = cfgs.find(cfg);
    if (it == cfgs.end())
      throw Error{a.find("config")->pos, "config= is abort|bypass|s1|s2|nested"};
    e.config = it->second;
    e.s1_context_ptr = 0x40010000 + sid * 0x1000;
    // Substreams only where the scenario asks for them: an SMMU with IDR1.SSIDSIZE = 0 makes
    // an STE with S1CDMax != 0 ILLEGAL (IHI 0070 5.2 S1CDMax; clause SMMUV3.STE.s1cdmax_range).
    e.s1_cd_max = substreams_ ? 6 : 0;
    e.s1_dss = 2;
    e.s2_vmid = uint16_t(a.num("vmid", 0));
    if (a.has("s2")) {
      const SmTable& t = table_named(a.name("s2"), a.find("s2")->pos);
      if (t.stage != 2) throw Error{a.find("s2")->pos, "s2= names a stage-2 table"};
      e.s2_ttb = t.b.root();
      e.s2_t0sz = t.s2.s2t0sz;
      e.s2_sl0 = t.s2.s2sl0;
      e.s2_tg = t.granule == sm::Granule::g4k ? 0 : t.granule == sm::Granule::g64k ? 1 : 2;
      e.s2_ps = 5; // 48 bits (IDR5.OAS encoding)
      e.s2_aa64 = true;
      e.s2_r = true;
    }
    for (const auto& arg : a.all()) {
      if (arg.key == "sid" || arg.key == "config" || arg.key == "vmid" || arg.key == "s2" ||
          arg.key == "l2")
        continue;
      if (!set_field(e, arg.key, Args::number(arg)))
        throw Error{arg.pos, fmt::format("the STE has no field {}", arg.key)};
    }
    if (!substreams_ && (e.s1_cd_max != 0 || e.s1_fmt != 0 || a.has("s1_dss")))
      throw Error{a.pos(), "S1CDMax, S1DSS and S1Fmt (substreams, two-level CD tables) need the "
                           "feature substreams (IDR1.SSIDSIZE >= 6)"};
    // The layout of the stream's CD table follows the STE (IHI 0070 5.2 S1Fmt: 0b11 behaves
    // as 0b00, and S1Fmt is IGNORED with S1CDMax = 0).
    if (a.has("s1_fmt") || a.has("s1_cd_max"))
      cd_layout(sid, e.s1_cd_max != 0 && (e.s1_fmt == 1 || e.s1_fmt == 2) ? e.s1_fmt : 0,
                a.has("s1_fmt") ? a.find("s1_fmt")->pos : a.pos());
    const auto w = sm::encode(e);
    for (int i = 0; i < 8; ++i)
      mem_.write64(at + 8 * uint64_t(i), w[size_t(i)]);
  }

  // ---- Two-level tables (suites/smmuv3/README.md "Two-level tables") ----

  // `strtab = linear | 2level` and `strtab_split = N` (6, 8, 10; other values are written as
  // given and behave as 6, IHI 0070 6.3.25).
  void stream_table(const scenario::Scenario& sc) {
    out_.setup.strtab_base = lay_.strtab;
    out_.setup.strtab_log2 = lay_.strtab_log2;
    const auto* h = sc.header("strtab");
    const auto* hs = sc.header("strtab_split");
    if (!h || (h->values.size() == 1 && h->values[0] == "linear")) {
      if (hs) throw Error{hs->pos, "strtab_split goes with strtab = 2level"};
      return;
    }
    if (h->values.size() != 1 || h->values[0] != "2level")
      throw Error{h->pos, "strtab = linear or strtab = 2level"};
    if (!wants("strtab_2level"))
      throw Error{h->pos, "strtab = 2level needs the feature strtab_2level (IDR0.ST_LEVEL)"};
    unsigned split = 6;
    if (hs) {
      if (hs->values.size() != 1) throw Error{hs->pos, "strtab_split = N"};
      split = unsigned(std::stoul(hs->values[0], nullptr, 0));
      if (split > 31) throw Error{hs->pos, "strtab_split is a 5-bit field (0..31)"};
    }
    lay_.strtab_fmt = 1;
    lay_.strtab_split = uint8_t(split);
    out_.setup.strtab_fmt = 1;
    out_.setup.strtab_split = split;
    split_ = split == 8 || split == 10 ? split : 6;
  }

  bool wants(std::string_view f) const {
    const auto& fs = out_.setup.features;
    return std::find(fs.begin(), fs.end(), f) != fs.end();
  }
  bool two_level_strtab() const { return lay_.strtab_fmt == 1; }
  static constexpr uint64_t kL2Strtab = 0x40300000; // + L1 index * 0x10000
  static constexpr uint64_t kCdLeaves = 0x40400000; // 64 KiB each, in step order
  static constexpr uint64_t kCdLeavesEnd = 0x41000000;
  uint64_t l1std_at(uint64_t sid) const { return lay_.strtab + (sid >> split_) * 8; }

  // Where the STE of sid goes: its linear slot; or in a two-level table the slot in `l2=`,
  // else in the L2 table the L1STD points at, creating the L1STD (Span = SPLIT + 1, the
  // table at 0x4030_0000 + index * 0x1_0000) in this step when it was never written.
  uint64_t ste_slot(uint64_t sid, const Args& a) {
    if (!two_level_strtab()) {
      if (a.has("l2")) throw Error{a.find("l2")->pos, "l2= needs strtab = 2level"};
      return lay_.strtab + sid * 64;
    }
    const uint64_t low = sid & ((uint64_t(1) << split_) - 1);
    if (a.has("l2")) return a.num("l2") + low * 64;
    const uint64_t w = *mem_.read64(l1std_at(sid));
    if (w == 0) {
      write_l1std(sid, split_ + 1, kL2Strtab + (sid >> split_) * 0x10000, a.pos());
      return kL2Strtab + (sid >> split_) * 0x10000 + low * 64;
    }
    const sm::StrtabL1Desc d = sm::decode_strtab_l1(w);
    if (d.span == 0 || d.span > split_ + 1 || low >= (uint64_t(1) << (d.span - 1)))
      throw Error{a.pos(), fmt::format("sid {} has no STE slot: its L1STD has span={} (give l2=)",
                                       sid, d.span)};
    return (d.l2_ptr & ~((uint64_t(1) << (5 + d.span)) - 1)) + low * 64;
  }

  void write_l1std(uint64_t sid, uint64_t span, uint64_t l2, scenario::Pos pos) {
    if (span > 31) throw Error{pos, "span is a 5-bit field (0..31)"};
    if (l2 >= (uint64_t(1) << 52) || (l2 & 0x3f))
      throw Error{pos, "l2= is 64-byte aligned, below 2^52"};
    mem_.write64(l1std_at(sid), sm::encode(sm::StrtabL1Desc{uint8_t(span), l2}));
  }

  // `l1std sid=N [span=S] [l2=ADDR]`: the L1STD of the level-1 index holding N. Defaults:
  // Span = SPLIT + 1 and the L2 table it points at now (or the compiler's, when unwritten).
  void l1std(const Args& a) {
    if (!two_level_strtab()) throw Error{a.pos(), "l1std needs strtab = 2level"};
    const uint64_t sid = a.num("sid");
    if (sid >= 256) throw Error{a.find("sid")->pos, "sid is below 256 (the stream table)"};
    for (const auto& arg : a.all())
      if (arg.key != "sid" && arg.key != "span" && arg.key != "l2")
        throw Error{arg.pos, fmt::format("l1std has no argument {}", arg.key)};
    const uint64_t w = *mem_.read64(l1std_at(sid));
    const uint64_t l2 = w ? sm::decode_strtab_l1(w).l2_ptr : kL2Strtab + (sid >> split_) * 0x10000;
    write_l1std(sid, a.num("span", split_ + 1), a.num("l2", l2), a.pos());
  }

  // The CD table layout of each stream: 0 linear, 1 (4 KiB leaves) or 2 (64 KiB leaves), set
  // by the first `cd` step or the first `ste` step that gives s1_fmt= (or s1_cd_max=); later
  // ones must agree.
  void cd_layout(uint64_t sid, unsigned fmt, scenario::Pos pos) {
    if (fmt != 0 && !wants("cd_2level"))
      throw Error{pos, "a two-level CD table needs the feature cd_2level (IDR0.CD2L)"};
    auto it = cd_fmt_.find(sid);
    if (it == cd_fmt_.end()) {
      cd_fmt_[sid] = fmt;
    } else if (it->second != fmt) {
      throw Error{pos, fmt::format("stream {}'s CD table is laid out for S1Fmt={} already", sid,
                                   it->second)};
    }
  }
  unsigned cd_fmt(uint64_t sid) const {
    auto it = cd_fmt_.find(sid);
    return it == cd_fmt_.end() ? 0 : it->second;
  }
  static uint64_t cd_table(uint64_t sid) { return 0x40010000 + sid * 0x1000; }
  uint64_t new_leaf(scenario::Pos pos) {
    if (next_leaf_ >= kCdLeavesEnd) throw Error{pos, "the CD leaf pool is full"};
    const uint64_t l = next_leaf_;
    next_leaf_ += 0x10000;
    return l;
  }

  // Where CD ssid of stream sid goes: linear slot; or, two-level, the slot in `l2=`, else in
  // the leaf its L1CD points at, creating the L1CD (V = 1, a new leaf) when never written.
  uint64_t cd_slot(uint64_t sid, uint64_t ssid, const Args& a) {
    const unsigned fmt = cd_fmt(sid);
    if (fmt == 0) {
      if (ssid >= 64) throw Error{a.pos(), "sid < 256 and ssid < 64"};
      if (a.has("l2")) throw Error{a.find("l2")->pos, "l2= needs a two-level CD table"};
      return cd_table(sid) + ssid * 64;
    }
    const unsigned leaf = fmt == 1 ? 6 : 10;
    // The L1 table stays in the stream's 4 KiB: 512 L1CDs.
    if ((ssid >> leaf) >= 512) throw Error{a.pos(), fmt::format("ssid < {}", 512u << leaf)};
    const uint64_t low = ssid & ((uint64_t(1) << leaf) - 1);
    if (a.has("l2")) return a.num("l2") + low * 64;
    const uint64_t at = cd_table(sid) + (ssid >> leaf) * 8;
    const uint64_t w = *mem_.read64(at);
    if (w == 0) {
      const uint64_t l = new_leaf(a.pos());
      mem_.write64(at, sm::encode(sm::CdL1Desc{true, l}));
      return l + low * 64;
    }
    const sm::CdL1Desc d = sm::decode_cd_l1(w);
    if (!d.v) throw Error{a.pos(), "the L1CD of this ssid has V=0 (give l2=)"};
    return d.l2_ptr + low * 64;
  }

  // `l1cd sid=N [ssid=I] [v=0|1] [l2=ADDR]`: the L1CD of stream N's level-1 index holding I.
  // Defaults: V = 1 and the leaf it points at now (a new leaf when never written).
  void l1cd(const Args& a) {
    const uint64_t sid = a.num("sid"), ssid = a.num("ssid", 0);
    if (sid >= 256) throw Error{a.find("sid")->pos, "sid is below 256 (the stream table)"};
    for (const auto& arg : a.all())
      if (arg.key != "sid" && arg.key != "ssid" && arg.key != "v" && arg.key != "l2")
        throw Error{arg.pos, fmt::format("l1cd has no argument {}", arg.key)};
    const unsigned fmt = cd_fmt(sid);
    if (fmt == 0)
      throw Error{a.pos(),
                  fmt::format("stream {} has no two-level CD table (ste s1_fmt=1|2)", sid)};
    const unsigned leaf = fmt == 1 ? 6 : 10;
    if ((ssid >> leaf) >= 512) throw Error{a.pos(), fmt::format("ssid < {}", 512u << leaf)};
    const uint64_t at = cd_table(sid) + (ssid >> leaf) * 8;
    const uint64_t w = *mem_.read64(at);
    const uint64_t l2 = a.has("l2") ? a.num("l2")
                        : w         ? sm::decode_cd_l1(w).l2_ptr
                                    : new_leaf(a.pos());
    if (l2 >= (uint64_t(1) << 52) || (l2 & 0xfff))
      throw Error{a.pos(), "l2= is 4 KiB aligned, below 2^52"};
    mem_.write64(at, sm::encode(sm::CdL1Desc{a.num("v", 1) != 0, l2}));
  }

  // CD defaults: V, AA64, R (record faults), TTB0/T0SZ/TG0 from the table, IPS 48 bits,
  // EPD1, ASID; then named overrides.
  void cd(const Args& a) {
    const uint64_t sid = a.num("sid"), ssid = a.num("ssid", 0);
    if (sid >= 256) throw Error{a.pos(), "sid < 256 and ssid < 64"};
    if (ssid != 0 && !substreams_)
      throw Error{a.find("ssid")->pos, "a CD for a SubstreamID needs the feature substreams"};
    if (a.has("s1_fmt")) {
      const uint64_t f = a.num("s1_fmt");
      cd_layout(sid, f == 1 || f == 2 ? unsigned(f) : 0, a.find("s1_fmt")->pos);
    } else if (!cd_fmt_.count(sid)) {
      cd_fmt_[sid] = 0; // written linear: a later two-level STE for the stream is a mistake
    }
    const uint64_t at = cd_slot(sid, ssid, a);
    sm::Cd c;
    c.v = true;
    c.aa64 = true;
    // A = 1: a CD with A = 0 is ILLEGAL on an SMMU with IDR0.TERM_MODEL = 1 (IHI 0070
    // CdIllegal), and the model's outcomes do not depend on A (RAZ/WI or abort is the
    // device's view of a terminated access, not the event).
    c.a = true;
    c.r = true;
    c.epd1 = true;
    c.ips = 5;
    c.asid = uint16_t(a.num("asid", 0));
    if (a.has("tt")) {
      const SmTable& t = table_named(a.name("tt"), a.find("tt")->pos);
      if (t.stage != 1) throw Error{a.find("tt")->pos, "tt= names a stage-1 table"};
      c.ttb0 = t.b.root();
      c.t0sz = uint8_t(64 - t.ia);
      c.tg0 = t.granule == sm::Granule::g4k ? 0 : t.granule == sm::Granule::g64k ? 1 : 2;
    }
    for (const auto& arg : a.all()) {
      if (arg.key == "sid" || arg.key == "ssid" || arg.key == "asid" || arg.key == "tt" ||
          arg.key == "s1_fmt" || arg.key == "l2")
        continue;
      if (!set_field(c, arg.key, Args::number(arg)))
        throw Error{arg.pos, fmt::format("the CD has no field {}", arg.key)};
    }
    const auto w = sm::encode(c);
    // The CD table of a nested stream is addressed by IPA; the compiler stores it at the
    // stream's CD-table address in RAM and scenarios map that IPA in stage 2 (or give the
    // STE s1_context_ptr= themselves).
    for (int i = 0; i < 8; ++i)
      mem_.write64(at + 8 * uint64_t(i), w[size_t(i)]);
  }

  const scenario::Scenario& sc_;
  sm::Layout lay_;
  Memory mem_;
  std::map<std::string, SmTable> tables_;
  uint64_t next_pool_ = 0x41000000;
  unsigned split_ = 6;                  // the effective SPLIT of a two-level stream table
  std::map<uint64_t, unsigned> cd_fmt_; // the CD table layout of each stream
  uint64_t next_leaf_ = kCdLeaves;
  Compiled out_;
};

// ---- Records ------------------------------------------------------------------------------------

std::string_view sm_event_name(uint8_t code) {
  switch (sm::EventType(code)) {
  case sm::EventType::f_uut:
    return "F_UUT";
  case sm::EventType::c_bad_streamid:
    return "C_BAD_STREAMID";
  case sm::EventType::f_ste_fetch:
    return "F_STE_FETCH";
  case sm::EventType::c_bad_ste:
    return "C_BAD_STE";
  case sm::EventType::f_bad_ats_treq:
    return "F_BAD_ATS_TREQ";
  case sm::EventType::f_stream_disabled:
    return "F_STREAM_DISABLED";
  case sm::EventType::f_transl_forbidden:
    return "F_TRANSL_FORBIDDEN";
  case sm::EventType::c_bad_substreamid:
    return "C_BAD_SUBSTREAMID";
  case sm::EventType::f_cd_fetch:
    return "F_CD_FETCH";
  case sm::EventType::c_bad_cd:
    return "C_BAD_CD";
  case sm::EventType::f_walk_eabt:
    return "F_WALK_EABT";
  case sm::EventType::f_translation:
    return "F_TRANSLATION";
  case sm::EventType::f_addr_size:
    return "F_ADDR_SIZE";
  case sm::EventType::f_access:
    return "F_ACCESS";
  case sm::EventType::f_permission:
    return "F_PERMISSION";
  case sm::EventType::f_tlb_conflict:
    return "F_TLB_CONFLICT";
  case sm::EventType::f_cfg_conflict:
    return "F_CFG_CONFLICT";
  case sm::EventType::e_page_request:
    return "E_PAGE_REQUEST";
  case sm::EventType::f_vms_fetch:
    return "F_VMS_FETCH";
  }
  return "";
}

sm::Evt4 evt4(const std::vector<uint64_t>& r) {
  sm::Evt4 w{};
  for (size_t i = 0; i < 4 && i < r.size(); ++i)
    w[i] = r[i];
  return w;
}

// A record field is compared only where the model defines it (the outcome's mask).
bool sm_field_defined(const hw::DmaOutcome& o, std::string_view k) {
  auto m = [&](size_t w, uint64_t bits) { return w < o.mask.size() && (o.mask[w] & bits); };
  if (k == "sid") return m(0, 0xffffffffull << 32);
  if (k == "ssid") return m(0, 0xfffffull << 12);
  if (k == "ssv") return m(0, 1ull << 11);
  if (k == "rnw") return m(1, 1ull << 35);
  if (k == "s2") return m(1, 1ull << 39);
  if (k == "class") return m(1, 3ull << 40);
  if (k == "addr") return m(2, ~0ull);
  if (k == "ipa" || k == "fetch") return m(3, ~0ull);
  return false;
}

Compiled compile_smmuv3(const scenario::Scenario& sc) {
  return SmCompiler(sc).run();
}

bool field_defined(std::string_view area, const hw::DmaOutcome& o, std::string_view k) {
  return area == "smmuv3" ? sm_field_defined(o, k) : detail::vtd_field_defined(o, k);
}

} // namespace

// What the accesses need of their devices (Setup::needs, Setup::requesters).
Compiled with_access_needs(Compiled c) {
  std::set<std::string> needs;
  std::set<uint32_t> requesters;
  for (const Step& st : c.steps) {
    if (st.kind != Step::Kind::dma) continue;
    requesters.insert(st.dma.sid);
    if (st.dma.ssid) needs.insert("dma_ssid");
    // SMMUv3 accesses are privileged unless priv=0 says otherwise; a VT-d request carries
    // privilege and execute only in a PASID prefix (model/vtd/machine.cpp access_of), so
    // they need no more there.
    if (c.setup.area == "smmuv3" && !st.dma.priv) needs.insert("dma_unpriv");
    if (c.setup.area == "smmuv3" && st.dma.exec && !st.dma.write) needs.insert("dma_exec");
  }
  c.setup.needs.assign(needs.begin(), needs.end());
  c.setup.requesters.assign(requesters.begin(), requesters.end());
  return c;
}

std::optional<Compiled> compile(const scenario::Scenario& sc, std::vector<Diagnostic>& diags) {
  try {
    if (sc.area == "smmuv3") return with_access_needs(compile_smmuv3(sc));
    if (sc.area == "vtd") return with_access_needs(detail::compile_vtd(sc));
    diags.push_back({sc.file, {1, 1}, fmt::format("no compiler for area '{}' yet", sc.area)});
  } catch (const Error& e) {
    diags.push_back({sc.file, e.pos, e.message});
  } catch (const std::exception& e) {
    diags.push_back({sc.file, {1, 1}, e.what()});
  }
  return std::nullopt;
}

const std::vector<std::string>& hw_area_features(std::string_view area) {
  static const std::vector<std::string> smmu = {
      "smmuv3", "stage1", "stage2", "nested",        "range_inv", "granule16k", "granule64k",
      "ats",    "viommu", "hyp",    "strtab_2level", "cd_2level", "substreams"};
  static const std::vector<std::string> vtd = {
      "vtd",   "legacy",  "scalable",  "first_stage", "second_stage", "nested",      "pass_through",
      "pasid", "dev_tlb", "superpage", "five_level",  "viommu",       "register_inv"};
  return area == "smmuv3" ? smmu : vtd;
}

bool hw_clause_known(std::string_view area, std::string_view id) {
  if (area == "smmuv3") return sm::clause_by_id(id) != nullptr;
  return vtd::clause_by_id(id) != nullptr;
}

void lint(const scenario::Scenario& sc, std::vector<Diagnostic>& diags) {
  if (!is_hw_area(sc.area)) return;
  static const std::set<std::string> kKeys = {"clauses", "features",  "evtq_log2",
                                              "mode",    "Generator", "Seed",
                                              "Origin",  "strtab",    "strtab_split"};
  const auto& feats = hw_area_features(sc.area);
  for (const auto& h : sc.headers) {
    if (!kKeys.count(h.key)) {
      diags.push_back(
          {sc.file, h.pos,
           fmt::format("unknown header '{}' (known: {})", h.key, fmt::join(kKeys, " "))});
      continue;
    }
    for (const auto& v : h.values) {
      if (h.key == "features" && std::find(feats.begin(), feats.end(), v) == feats.end())
        diags.push_back({sc.file, h.pos,
                         fmt::format("unknown {} feature '{}' (known: {})", sc.area, v,
                                     fmt::join(feats, " "))});
      if (h.key == "clauses" && !hw_clause_known(sc.area, v))
        diags.push_back({sc.file, h.pos, fmt::format("unknown clause '{}'", v)});
    }
  }
  if (!sc.header("clauses"))
    diags.push_back({sc.file, {1, 1}, "missing header 'clauses = ...': name what it exercises"});
  if (!sc.mems.empty())
    diags.push_back({sc.file, sc.mems.front().pos, "hardware-level areas declare no mem"});
  compile(sc, diags);
}

std::map<std::string, uint64_t> record_fields(std::string_view area,
                                              const std::vector<uint64_t>& record) {
  std::map<std::string, uint64_t> f;
  if (area == "smmuv3") {
    const sm::EventRecord e = sm::decode_event(evt4(record));
    f["sid"] = e.sid;
    f["ssid"] = e.ssid;
    f["ssv"] = e.ssv;
    f["rnw"] = e.rnw;
    f["s2"] = e.s2;
    f["class"] = e.event_class;
    f["addr"] = e.input_addr;
    f["ipa"] = e.addr2;
    f["fetch"] = e.addr2;
  }
  if (area == "vtd") return detail::vtd_record_fields(record);
  return f;
}

std::string record_name(std::string_view area, const std::vector<uint64_t>& record) {
  if (area == "smmuv3" && !record.empty()) {
    const auto n = sm_event_name(uint8_t(record[0] & 0xff));
    return n.empty() ? fmt::format("EVENT_{:#x}", record[0] & 0xff) : std::string(n);
  }
  if (area == "vtd") return detail::vtd_record_name(record);
  return "fault";
}

std::string describe(std::string_view area, const hw::DmaOutcome& o) {
  switch (o.kind) {
  case hw::DmaOutcome::Kind::ok:
    return fmt::format("ok pa={:#x}", o.pa);
  case hw::DmaOutcome::Kind::abort:
    return "abort";
  case hw::DmaOutcome::Kind::fault:
    break;
  }
  if (o.record.empty()) return "fault (record not read)";
  std::string s = record_name(area, o.record);
  for (const auto& [k, v] : record_fields(area, o.record)) {
    if (!o.mask.empty() && !field_defined(area, o, k)) continue;
    if (k == "fetch") continue;
    s += fmt::format(" {}={:#x}", k, v);
  }
  return s;
}

bool matches(std::string_view area, const Pattern& p, const hw::DmaOutcome& o) {
  if (p.kind != o.kind) return false;
  if (o.kind == hw::DmaOutcome::Kind::ok) return !p.pa || *p.pa == o.pa;
  if (o.kind == hw::DmaOutcome::Kind::abort) return true;
  if (record_name(area, o.record) != p.name) return false;
  const auto f = record_fields(area, o.record);
  for (const auto& [k, v] : p.fields) {
    auto it = f.find(k);
    if (it == f.end() || it->second != v) return false;
    if (!field_defined(area, o, k)) return false;
  }
  return true;
}

} // namespace iommuspec::conformance::hwc

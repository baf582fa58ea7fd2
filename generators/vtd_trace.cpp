// VT-d traces (conformance/suites/vtd/README.md): requesters on legacy context entries or
// scalable-mode PASID entries (RID_PASID, second or first stage) over two paging structures,
// a handful of IOVAs and pages. As for SMMUv3 the world is small so that it aliases: two
// requesters on one table, two IOVAs on one page, flushes of another requester's DID; raw
// level-2 entries that loop back to a table's root or jump into the other table; invalid
// descriptors that stop the queue (IQE) and the resume that replaces them.
#include "trace_areas.h"

#include <map>

namespace iommuspec::generators {
namespace {

using scenario::Arg;

// suites/vtd/README.md: paging structures are allocated in step order from 0x0100_0000, so
// the roots of T1 and T2 (written first) are here.
constexpr uint64_t kRootT1 = 0x1000000, kRootT2 = 0x1001000;

struct Leaf {
  uint64_t iova, size;
};
const std::vector<Leaf> kLeaves = {
    {0x10000, 0x1000}, {0x11000, 0x1000}, {0x12000, 0x1000}, {0x200000, 0x200000}};
const std::vector<Leaf> kLeavesSmall = {{0x10000, 0x1000}, {0x11000, 0x1000}};
const std::vector<uint64_t> kPages = {0x2000000, 0x2001000, 0x2100000};
const std::vector<uint64_t> kBlocks = {0x2200000, 0x2400000};

enum class Mode { legacy, second_stage, first_stage };

struct Requester {
  bool translates = false, written = false;
  std::string table;
  uint64_t did = 0;
};

class VtdGen final : public TraceGen {
public:
  explicit VtdGen(const TraceOptions& opt) : opt_(opt) {}

  void begin(scenario::Scenario& sc, Picker& p) override {
    sc.id = "fuzz";
    std::vector<Mode> modes;
    if (has("legacy")) modes.push_back(Mode::legacy);
    if (!opt_.small && has("scalable") && has("second_stage")) modes.push_back(Mode::second_stage);
    if (!opt_.small && has("scalable") && has("first_stage")) modes.push_back(Mode::first_stage);
    mode_ = p.one_of(modes);
    superpage_ = !opt_.small && has("superpage");
    std::vector<std::string> features = {"vtd"};
    features.push_back(mode_ == Mode::legacy ? "legacy" : "scalable");
    features.push_back(mode_ == Mode::first_stage ? "first_stage" : "second_stage");
    if (superpage_) features.push_back("superpage");
    sc.headers.push_back({"features", features, {}});
    sc.headers.push_back({"mode", {mode_ == Mode::legacy ? "legacy" : "scalable"}, {}});
    for (const char* t : {"T1", "T2"})
      append(sc, make_step("table", {ref("", t), num("stage", mode_ == Mode::first_stage ? 1 : 2),
                                     num("levels", 4)}));
  }

  void action(scenario::Scenario& sc, Picker& p) override {
    switch (p.pick(13)) {
    case 0:
    case 1:
      return install(sc, p);
    case 2:
    case 3:
      return map(sc, p);
    case 4:
      return unmap(sc, p);
    case 5:
      return raw_entry(sc, p);
    case 6:
    case 7:
    case 8:
      return invalidate(sc, p);
    case 9:
      return disable(sc, p);
    case 10:
      return remap_and_check(sc, p);
    default:
      return dma(sc, p);
    }
  }

private:
  bool has(const char* f) const { return opt_.features.count(f) != 0; }
  std::vector<Leaf> leaves() const {
    if (opt_.small) return kLeavesSmall;
    if (superpage_) return kLeaves;
    return {kLeaves.begin(), kLeaves.end() - 1};
  }
  // Requesters on bus 0 (devices 2, 3, 4): slots q35 leaves free.
  std::vector<uint64_t> sids() const {
    return opt_.small ? std::vector<uint64_t>{0x10, 0x18} : std::vector<uint64_t>{0x10, 0x18, 0x20};
  }

  // Legacy: the context entry (P=1, SLPTPTR, DID). Scalable: the context entry and the
  // RID_PASID entry (PGTT second or first stage). VT-d 6.5.2.1/6.5.2.2: an entry that was
  // not present may be cached when CAP.CM=1, so the context-cache / PASID-cache
  // invalidation and the IOTLB invalidation of the domain usually follow (Linux's order).
  void install(scenario::Scenario& sc, Picker& p) {
    const uint64_t sid = p.one_of(sids());
    Requester& r = reqs_[sid];
    r.table = p.one_of(std::vector<std::string>{"T1", "T2"});
    // A DID of its own (1, 2, 3 for source-ids 0x10, 0x18, 0x20). IOTLB entries are tagged
    // with the source-id as well (VT-d 6.2.4), but the paging-structure caches may be shared
    // by a domain, and software must give one DID to one set of paging structures (6.2.1):
    // requesters that share a DID while their tables differ are left out.
    r.did = (sid - 0x10) / 8 + 1;
    r.translates = true;
    if (mode_ == Mode::legacy) {
      append(sc, make_step("context", {num("sid", sid), num("did", r.did), ref("tt", "translated"),
                                       ref("ss", r.table)}));
    } else {
      if (!r.written) append(sc, make_step("context", {num("sid", sid)}));
      const bool fs = mode_ == Mode::first_stage;
      append(sc,
             make_step("pasid", {num("sid", sid), num("pasid", 0), ref("pgtt", fs ? "fs" : "ss"),
                                 num("did", r.did), ref(fs ? "fs" : "ss", r.table)}));
    }
    r.written = true;
    if (p.one_in(4)) return;
    std::vector<std::vector<Arg>> descs;
    if (mode_ == Mode::legacy)
      descs.push_back(
          {ref("op", "cc"), ref("g", "device"), num("did", r.did), num("sid", sid), num("fm", 0)});
    else
      descs.push_back(
          {ref("op", "pasid_cache"), ref("g", "pasid"), num("did", r.did), num("pasid", 0)});
    descs.push_back(domain_flush(r.did));
    descs.push_back({ref("op", "wait")});
    append(sc, make_step("invq", {records("descs", descs)}));
  }

  std::vector<Arg> domain_flush(uint64_t did) const {
    if (mode_ == Mode::first_stage)
      return {ref("op", "piotlb"), ref("g", "all_in_pasid"), num("did", did), num("pasid", 0)};
    return {ref("op", "iotlb"), ref("g", "domain"), num("did", did)};
  }

  std::vector<Arg> page_flush(uint64_t did, uint64_t addr, uint64_t am) const {
    if (mode_ == Mode::first_stage)
      return {ref("op", "piotlb"), ref("g", "page_in_pasid"), num("did", did),
              num("pasid", 0),     num("addr", addr),         num("am", am)};
    return {ref("op", "iotlb"), ref("g", "page"), num("did", did), num("addr", addr),
            num("am", am)};
  }

  // A requester stops translating: its context entry (legacy) or PASID entry not present.
  void disable(scenario::Scenario& sc, Picker& p) {
    const uint64_t sid = p.one_of(sids());
    Requester& r = reqs_[sid];
    if (!r.written) return install(sc, p);
    r.translates = false;
    if (mode_ == Mode::legacy)
      append(sc, make_step("context", {num("sid", sid), num("did", r.did), ref("tt", "translated"),
                                       ref("ss", r.table), num("present", 0)}));
    else
      append(sc,
             make_step("pasid",
                       {num("sid", sid), num("pasid", 0),
                        ref("pgtt", mode_ == Mode::first_stage ? "fs" : "ss"), num("did", r.did),
                        ref(mode_ == Mode::first_stage ? "fs" : "ss", r.table), num("p", 0)}));
  }

  scenario::Step map_step(const std::string& t, const Leaf& l, Picker& p) {
    const uint64_t pa = l.size == 0x1000 ? p.one_of(kPages) : p.one_of(kBlocks);
    std::vector<Arg> args = {ref("", t), num("iova", l.iova), num("pa", pa), num("size", l.size)};
    if (!opt_.small && p.one_in(3))
      args.push_back(mode_ == Mode::first_stage ? flags("perm", {"u", "x"}) : ref("perm", "r"));
    return make_step("map", args);
  }

  void map(scenario::Scenario& sc, Picker& p) {
    const std::string t = p.one_of(std::vector<std::string>{"T1", "T2"});
    const Leaf l = p.one_of(leaves());
    if (!tables_.usable(t, l.iova)) return dma(sc, p);
    if (tables_.has(t, l.iova)) {
      append(sc, make_step("unmap", {ref("", t), num("iova", l.iova), num("size", l.size)}));
      if (p.coin()) invalidate(sc, p);
    }
    append(sc, map_step(t, l, p));
    tables_.mapped(t, l.iova, l.size);
  }

  void unmap(scenario::Scenario& sc, Picker& p) {
    const std::string t = p.one_of(std::vector<std::string>{"T1", "T2"});
    auto& m = tables_.leaves(t);
    if (m.empty()) return map(sc, p);
    auto it = std::next(m.begin(), long(p.pick(m.size())));
    if (!tables_.usable(t, it->first)) return dma(sc, p);
    append(sc, make_step("unmap", {ref("", t), num("iova", it->first), num("size", it->second)}));
    m.erase(it);
  }

  // Raw entries where the structures exist (once a low page was mapped): at level 2 (the
  // entry above the low pages' leaf table) a pointer back to a root (a loop) or into the
  // other table, or not present; at level 1 a leaf to another page (an alias no map step
  // made), or not present.
  void raw_entry(scenario::Scenario& sc, Picker& p) {
    const std::string t = p.one_of(std::vector<std::string>{"T1", "T2"});
    if (!tables_.raw_ok(t)) return dma(sc, p);
    const uint64_t level = p.one_of(std::vector<uint64_t>{1, 2});
    const uint64_t iova = p.one_of(std::vector<uint64_t>{0x10000, 0x11000, 0x12000});
    // Second stage: R|W (bits 0, 1); first stage: P|R/W|U/S (bits 0, 1, 2) and A (bit 5).
    const uint64_t table_bits = mode_ == Mode::first_stage ? 0x27 : 0x3;
    std::vector<uint64_t> values = {0};
    if (level == 2) {
      values.push_back(kRootT1 | table_bits);
      values.push_back(kRootT2 | table_bits);
    } else {
      values.push_back(kPages[2] | table_bits); // a leaf to another page, written raw
    }
    const uint64_t value = p.one_of(values);
    append(sc, make_step("desc", {ref("", t), num("iova", iova), num("level", level),
                                  num("value", value)}));
    if (level == 2)
      tables_.raw_table_entry(t);
    else
      tables_.raw_leaf(t, iova, value);
  }

  std::vector<Arg> descriptor(Picker& p) {
    const uint64_t did = p.one_of(std::vector<uint64_t>{1, 2, 3});
    const uint64_t sid = p.one_of(sids());
    const Leaf l = p.one_of(leaves());
    switch (p.pick(9)) {
    case 0:
    case 1:
    case 2:
      return page_flush(did, l.iova, p.one_of(std::vector<uint64_t>{0, 1, 9}));
    case 3:
      return domain_flush(did);
    case 4:
      return {ref("op", "iotlb"), ref("g", "global")};
    case 5:
      return mode_ == Mode::legacy
                 ? std::vector<Arg>{ref("op", "cc"), ref("g", "device"), num("did", did),
                                    num("sid", sid), num("fm", 0)}
                 : std::vector<Arg>{ref("op", "pasid_cache"), ref("g", "pasid"), num("did", did),
                                    num("pasid", 0)};
    case 6:
      return {ref("op", "cc"), ref("g", "global")};
    case 7:
      // An IOTLB descriptor with a reserved bit (qw0 bit 32): IQE, VT-d 6.5.2.10.
      return {ref("op", "raw"), num("w0", 0x100010032), num("w1", 0x10000)};
    default:
      return {ref("op", "wait")};
    }
  }

  // A batch of 1..3 descriptors, usually ending with a wait descriptor (VT-d 6.5.2.8: the
  // invalidations before it are complete once its status write is visible).
  void invalidate(scenario::Scenario& sc, Picker& p) {
    std::vector<std::vector<Arg>> descs;
    const size_t n = opt_.small ? 1 : 1 + p.pick(3);
    bool bad = false;
    for (size_t i = 0; i < n; ++i) {
      descs.push_back(descriptor(p));
      bad = bad || std::get<scenario::Ref>(descs.back().front().value.v).name == "raw";
    }
    if (opt_.small || !p.one_in(4)) descs.push_back({ref("op", "wait")});
    append(sc, make_step("invq", {records("descs", descs)}));
    if (bad && !p.one_in(4)) append(sc, make_step("resume", {}));
  }

  // Break, make, invalidate (the requester's own page or domain, another DID, or nothing),
  // with an access before and after (VT-d 6.5.2.3 / 6.5.2.4 scope).
  void remap_and_check(scenario::Scenario& sc, Picker& p) {
    std::vector<uint64_t> live;
    for (const auto& [sid, r] : reqs_)
      if (r.translates) live.push_back(sid);
    if (live.empty()) return install(sc, p);
    const uint64_t sid = p.one_of(live);
    const Requester& r = reqs_[sid];
    const Leaf l = p.one_of(leaves());
    if (!tables_.usable(r.table, l.iova)) return dma(sc, p);
    if (!tables_.has(r.table, l.iova)) {
      append(sc, map_step(r.table, l, p));
      tables_.mapped(r.table, l.iova, l.size);
    }
    const std::vector<Arg> access = {num("sid", sid), num("iova", l.iova)};
    append(sc, make_step("dma", access));
    append(sc, make_step("unmap", {ref("", r.table), num("iova", l.iova), num("size", l.size)}));
    append(sc, map_step(r.table, l, p));
    std::vector<Arg> d;
    switch (p.pick(4)) {
    case 0:
      d = page_flush(r.did, l.iova, l.size > 0x1000 ? 9 : 0);
      break;
    case 1:
      d = domain_flush(r.did);
      break;
    case 2:
      d = domain_flush(r.did % 3 + 1);
      break;
    default:
      break;
    }
    if (!d.empty()) append(sc, make_step("invq", {records("descs", {d, {ref("op", "wait")}})}));
    append(sc, make_step("dma", access));
  }

  void dma(scenario::Scenario& sc, Picker& p) {
    const uint64_t sid = p.one_of(sids());
    std::vector<uint64_t> iovas;
    for (const auto& l : leaves())
      iovas.push_back(l.iova);
    iovas.push_back(0x13000); // never mapped
    std::vector<Arg> args = {num("sid", sid), num("iova", p.one_of(iovas))};
    if (opt_.small) return append(sc, make_step("dma", args));
    args.back() = num("iova", std::get<scenario::Number>(args.back().value.v).v +
                                  p.one_of(std::vector<uint64_t>{0, 0x8, 0xff8}));
    if (p.one_in(3)) args.push_back(num("write", 1));
    append(sc, make_step("dma", args));
  }

  TraceOptions opt_;
  Mode mode_ = Mode::legacy;
  bool superpage_ = false;
  std::map<uint64_t, Requester> reqs_;
  Tables tables_;
};

} // namespace

std::unique_ptr<TraceGen> make_vtd_gen(const TraceOptions& opt) {
  return std::make_unique<VtdGen>(opt);
}

} // namespace iommuspec::generators

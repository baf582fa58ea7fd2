// iommufd traces: sequences of uAPI calls (ioctls and IOMMU_TEST_CMD ops of the selftest
// mock driver) generated with the model as the state. The generator keeps its own
// iommufd::Machine for the trace's profile and its own scenario::Names; each step is encoded
// and executed on that machine as soon as it is appended, and the names it introduces are
// bound only when the model says the call succeeded, exactly as the runner binds them
// (conformance/runner/runner.cpp). So a later step names objects that exist (mostly), or
// deliberately ones that do not: destroyed IDs, an object of another type, 0, or an ID no
// short trace allocates.
//
// The world is small on purpose, so that mappings overlap, unmaps cut them, invalidation
// arrays carry a bad entry in the middle and objects are destroyed while held:
// - one user memory region M of 64 pages; IOVAs at the start of the mock domain's aperture
//   (iommufd_test.h MOCK_APERTURE_START = 1 << 24), a half page in (MOCK_IO_PAGE_SIZE is
//   PAGE_SIZE / 2), 0 and the last page of the 64-bit space (outside the aperture: reserved
//   once a mock domain is attached, io_pagetable.c iopt_table_add_domain());
// - lengths of one and two pages, half a page and 0;
// - nested HWPTs with the selftest data {iotlb} (selftest.c __mock_domain_alloc_nested():
//   all four IOTLB entries start at that value) invalidated by arrays of
//   iommu_hwpt_invalidate_selftest entries (include/uapi/linux/iommufd.h iommu_hwpt_invalidate
//   @entry_num: "Output the number of requests successfully handled by kernel.").
// An action whose objects are missing first makes them (a nested HWPT needs a nesting
// parent, which needs a device, which needs an IOAS), so that deep chains are common.
#include "scenario/encode.h"
#include "trace_areas.h"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

namespace iommuspec::generators {
namespace {

using iommufd::ObjType;
using scenario::Arg;
using scenario::Binding;

constexpr uint64_t kMemSize = 0x40000;
constexpr uint64_t kScratch = 0x3e000; // M+kScratch: the buffer of access_rw, never mapped
constexpr uint64_t kAperture = iommufd::kMockApertureStart;
constexpr uint64_t kU64Max = ~0ull;
constexpr uint64_t kNeverId = 0x7ffffff0; // in xa_limit_31b, never reached by a short trace
constexpr uint32_t kIotlbValue = 0x1234;  // a nested HWPT's initial IOTLB value

// The step's out names, by what the generator may later do with them.
struct Named {
  std::string name;
  enum class Kind { obj, fd, pages } kind = Kind::obj;
  std::string owner; // pages: the access fd they were pinned through
};

bool names(const scenario::Value& v, const std::string& name) {
  if (const auto* r = std::get_if<scenario::Ref>(&v.v)) return r->name == name;
  const auto* f = std::get_if<scenario::Flags>(&v.v);
  return f && std::find(f->names.begin(), f->names.end(), name) != f->names.end();
}

// The features one step uses beyond iommufd; `viommus` are the names vIOMMUs were bound to.
void step_features(const scenario::Step& st, std::set<std::string>& viommus,
                   std::set<std::string>& used) {
  const iommufd::OpDesc* op = iommufd::op_by_name(st.op);
  if (op && op->kind == iommufd::OpKind::test_op) used.insert("selftest");
  if (st.op == "hwpt_invalidate" || st.op == "md_check_iotlb") used.insert("nesting");
  if (st.op == "viommu_alloc" || st.op == "vdevice_alloc" || st.op == "dev_check_cache" ||
      st.op == "veventq_alloc")
    used.insert({"nesting", "viommu"});
  if (st.op == "veventq_alloc") used.insert("veventq");
  for (const auto& a : st.args) {
    const auto* r = std::get_if<scenario::Ref>(&a.value.v);
    if (st.op == "hwpt_alloc" && (a.key == "data_type" || names(a.value, "nest_parent")))
      used.insert("nesting");
    if (st.op == "hwpt_alloc" && a.key == "flags" && names(a.value, "dirty_tracking"))
      used.insert("dirty-tracking");
    if (r && a.key == "out_viommu_id") viommus.insert(r->name);
    if (r && a.key.rfind("out_", 0) != 0 && viommus.count(r->name))
      used.insert({"nesting", "viommu"}); // a nested HWPT on it, its invalidation
  }
}

class IommufdGen final : public TraceGen {
public:
  explicit IommufdGen(const TraceOptions& opt) : opt_(opt), m_(opt.profile) { choose_actions(); }

  void begin(scenario::Scenario& sc, Picker& p) override {
    sc.id = "fuzz";
    sc.headers = {{"clauses", {}, {}},
                  {"features", {}, {}},
                  {"profile", {std::string(iommufd::profile_name(opt_.profile))}, {}}};
    sc.mems.push_back({"M", kMemSize, {}});
    // The model target places mem regions the same way (conformance/targets/model_target.cpp).
    mem_base_ = m_.place_mem(kMemSize);
    m_.add_mem(mem_base_, kMemSize);
    names_.bound["M"] = {Binding::Kind::mem, mem_base_, kMemSize, 0};
    ioas_alloc(sc, p);
    if (!opt_.small && p.coin()) mock_domain(sc, p);
  }

  void action(scenario::Scenario& sc, Picker& p) override { (this->*p.one_of(actions_))(sc, p); }

private:
  using Action = void (IommufdGen::*)(scenario::Scenario&, Picker&);

  bool has(const char* f) const { return opt_.features.count(f) != 0; }
  bool latest() const { return opt_.profile == iommufd::Profile::linux_latest; }
  bool nesting() const { return has("nesting"); }
  // vIOMMU objects exist in the newer uAPI only (viommu.c; the model's linux-6.12 profile
  // has no IOMMU_VIOMMU_ALLOC: ops.def profiles).
  bool viommu() const { return latest() && nesting() && has("viommu"); }

  // Actions and their weights (an action listed twice is picked twice as often). The small
  // world keeps the core life cycle and invalidation, each with few distinct choices.
  void choose_actions() {
    const bool big = !opt_.small;
    auto add_action = [&](Action a, int weight) {
      for (int i = 0; i < weight; ++i)
        actions_.push_back(a);
    };
    add_action(&IommufdGen::ioas_alloc, 1);
    add_action(&IommufdGen::ioas_map, big ? 3 : 1);
    add_action(&IommufdGen::ioas_unmap, big ? 2 : 1);
    add_action(&IommufdGen::mock_domain, big ? 2 : 1);
    add_action(&IommufdGen::hwpt_alloc_paging, 1);
    add_action(&IommufdGen::create_access, 1);
    add_action(&IommufdGen::destroy, big ? 2 : 1);
    if (big) {
      add_action(&IommufdGen::ioas_copy, 1);
      add_action(&IommufdGen::ioas_iova_ranges, 1);
      add_action(&IommufdGen::ioas_allow_iovas, 1);
      add_action(&IommufdGen::md_check_map, 1);
      add_action(&IommufdGen::access_pages, 1);
      add_action(&IommufdGen::access_rw, 1);
      add_action(&IommufdGen::destroy_access_pages, 1);
      add_action(&IommufdGen::close_fd, 1);
    }
    if (nesting()) {
      add_action(&IommufdGen::hwpt_alloc_nested, big ? 2 : 1);
      add_action(&IommufdGen::hwpt_invalidate, big ? 3 : 1);
      add_action(&IommufdGen::md_check_iotlb, big ? 2 : 1);
    }
    if (viommu() && big) {
      add_action(&IommufdGen::viommu_alloc, 1);
      add_action(&IommufdGen::vdevice_alloc, 1);
      add_action(&IommufdGen::viommu_invalidate, 1);
      if (has("veventq")) add_action(&IommufdGen::veventq_alloc, 1);
    }
  }

  // ---- names, bound as the runner binds them ----

  std::string fresh(const std::string& prefix) { return prefix + std::to_string(++count_[prefix]); }

  const iommufd::Object* object_of(const std::string& name) const {
    const Binding* b = names_.find(name);
    if (!b || b->kind != Binding::Kind::value) return nullptr;
    const iommufd::Object* o = m_.object(uint32_t(b->value));
    return o && !o->tombstone ? o : nullptr;
  }

  // Live objects of a type, one name per object (an automatic HWPT shared by two devices
  // has two names), oldest first; `keep` narrows them.
  template <class Keep>
  std::vector<std::string> live(ObjType t, Keep keep) const {
    std::vector<std::string> out;
    std::set<uint32_t> seen;
    for (const auto& n : named_) {
      const iommufd::Object* o = n.kind == Named::Kind::obj ? object_of(n.name) : nullptr;
      if (o && o->type == t && keep(*o) && seen.insert(o->id).second) out.push_back(n.name);
    }
    return out;
  }
  std::vector<std::string> live(ObjType t) const {
    return live(t, [](const iommufd::Object&) { return true; });
  }
  std::vector<std::string> parents() const {
    return live(ObjType::hwpt_paging, [](const iommufd::Object& o) {
      const auto& h = std::get<iommufd::HwptPagingState>(o.data);
      return h.nest_parent && !h.auto_domain;
    });
  }
  std::vector<std::string> named(Named::Kind k) const {
    std::vector<std::string> out;
    for (const auto& n : named_)
      if (n.kind == k) out.push_back(n.name);
    return out;
  }

  // An argument naming an object: one of `choices` (live objects of the right kind) nine
  // times in ten, else one that is not (IOMMUFD.OBJ.lookup_type: absent or of another type).
  // An action names up to three objects, so about a quarter of them name a wrong one.
  Arg pick_obj(const std::string& key, const std::vector<std::string>& choices, Picker& p) {
    if (opt_.small) return choices.empty() ? num(key, 0) : ref(key, choices.back());
    if (!choices.empty() && !p.one_in(10)) return ref(key, p.one_of(choices));
    return wrong_obj(key, choices, p);
  }

  Arg wrong_obj(const std::string& key, const std::vector<std::string>& right, Picker& p) {
    std::vector<std::string> stale, other;
    for (const auto& n : named(Named::Kind::obj)) {
      if (std::find(right.begin(), right.end(), n) != right.end()) continue;
      (object_of(n) ? other : stale).push_back(n);
    }
    switch (p.pick(4)) {
    case 0:
      if (!stale.empty()) return ref(key, p.one_of(stale)); // destroyed: its ID is free
      [[fallthrough]];
    case 1:
      if (!other.empty()) return ref(key, p.one_of(other)); // live, of another type
      [[fallthrough]];
    case 2:
      return num(key, 0);
    default:
      return num(key, kNeverId);
    }
  }

  // ---- appending a step: encode it, run it on the model, bind its names ----

  // Returns whether the model says the call succeeded.
  bool add(scenario::Scenario& sc, scenario::Step st) {
    std::vector<scenario::Diagnostic> diags;
    const auto enc = scenario::encode(st, names_, sc.file, diags);
    if (!enc)
      throw std::logic_error("iommufd trace generator: step does not encode: " +
                             (diags.empty() ? st.op : diags.front().text()));
    const auto res = m_.execute(enc->call);
    if (res.allowed.clause) clauses_.insert(std::string(res.allowed.clause->id));
    const bool ok = res.obs.err == Errno::ok;
    if (ok) bind(*enc, res.obs, st, int(sc.steps.size()) + 1);
    sc.steps.push_back(std::move(st));
    write_headers(sc);
    return ok;
  }

  void bind(const scenario::Encoded& enc, const iommufd::Observation& obs, const scenario::Step& st,
            int number) {
    for (const auto& b : enc.binds) {
      names_.bound[b.name] = {Binding::Kind::value, iommufd::read_field(obs.arg.data(), *b.field),
                              0, number};
      Named n{b.name, Named::Kind::obj, ""};
      if (b.field->role == iommufd::Role::out_fd) n.kind = Named::Kind::fd;
      if (b.field->role == iommufd::Role::out) {
        n.kind = Named::Kind::pages;
        for (const auto& a : st.args)
          if (a.key == "id") n.owner = std::get<scenario::Ref>(a.value.v).name;
      }
      named_.push_back(std::move(n));
    }
  }

  // clauses = the clauses the model decided the steps by; features = what the steps use.
  void write_headers(scenario::Scenario& sc) const {
    for (auto& h : sc.headers) {
      if (h.key == "clauses") h.values.assign(clauses_.begin(), clauses_.end());
      if (h.key == "features") h.values = iommufd_features(sc);
    }
  }

  // ---- the IOAS and its mappings (ioas.c, io_pagetable.c) ----

  const iommufd::IoasState* ioas_state(const std::string& name) const {
    const iommufd::Object* o = object_of(name);
    return o && o->type == ObjType::ioas ? &std::get<iommufd::IoasState>(o->data) : nullptr;
  }
  // The areas of the IOAS an argument names (none when it names no IOAS).
  std::vector<iommufd::Area> areas_of(const Arg& a) const {
    std::vector<iommufd::Area> out;
    const auto* r = std::get_if<scenario::Ref>(&a.value.v);
    if (const iommufd::IoasState* s = r ? ioas_state(r->name) : nullptr)
      for (const auto& [start, area] : s->areas)
        out.push_back(area);
    return out;
  }
  // M+off for a user address inside M.
  Arg user(const std::string& key, uint64_t va) const {
    Arg a = ref(key, "M");
    std::get<scenario::Ref>(a.value.v).offset = va - mem_base_;
    return a;
  }
  Arg mem(const std::string& key, uint64_t off) const { return user(key, mem_base_ + off); }

  void ioas_alloc(scenario::Scenario& sc, Picker&) {
    add(sc, make_step("ioas_alloc", {ref("out_ioas_id", fresh("A"))}));
  }

  std::string need_ioas(scenario::Scenario& sc, Picker& p) {
    if (live(ObjType::ioas).empty()) ioas_alloc(sc, p);
    const auto l = live(ObjType::ioas);
    return l.empty() ? "" : (opt_.small ? l.back() : p.one_of(l));
  }
  std::vector<std::string> ioas_list(scenario::Scenario& sc, Picker& p) {
    need_ioas(sc, p);
    return live(ObjType::ioas);
  }

  // IOAS_MAP: fixed or automatic IOVA (uapi iommu_ioas_map), at the aperture's start, half
  // a page in, 0 or the top page; one or two pages, half a page or nothing; readable and/or
  // writeable or neither (EINVAL); user memory at page or half-page offsets, or running past
  // M's end (unbacked: EFAULT once a domain pins it, pages.c pfn_reader_user_pin()).
  void ioas_map(scenario::Scenario& sc, Picker& p) {
    const Arg ioas = pick_obj("ioas_id", ioas_list(sc, p), p);
    if (opt_.small) {
      static const std::vector<std::pair<uint64_t, uint64_t>> small = {
          {kAperture, 0x2000}, {kAperture + 0x1000, 0x1000}, {0, 0x1000}};
      const auto& [iova, length] = p.one_of(small);
      std::vector<std::string> f = {"readable", "writeable"};
      if (iova) f.insert(f.begin(), "fixed_iova");
      std::vector<Arg> args = {flags("flags", f), ioas, mem("user_va", 0), num("length", length)};
      if (iova) args.push_back(num("iova", iova));
      add(sc, make_step("ioas_map", args));
      return;
    }
    const bool fixed = !p.one_in(3);
    std::vector<std::string> f;
    if (fixed) f.push_back("fixed_iova");
    switch (p.pick(6)) {
    case 0:
      f.push_back("readable");
      break;
    case 1:
      break; // neither: IOMMUFD.IOAS_MAP.prot
    default:
      f.insert(f.end(), {"readable", "writeable"});
    }
    static const std::vector<uint64_t> lengths = {0x1000, 0x2000, 0x1000, 0x800, 0x4000, 0};
    static const std::vector<uint64_t> offsets = {0,     0x1000, 0x2000,
                                                  0x800, 0x8000, kMemSize - 0x1000};
    std::vector<Arg> args = {flags("flags", f), ioas, mem("user_va", p.one_of(offsets)),
                             num("length", p.one_of(lengths))};
    if (fixed) args.push_back(num("iova", fixed_iova(p)));
    add(sc, make_step("ioas_map", args));
  }

  uint64_t fixed_iova(Picker& p) const {
    static const std::vector<uint64_t> iovas = {
        kAperture, kAperture + 0x1000, kAperture + 0x2000, kAperture + 0x800, kAperture + 0x4000,
        0,         kU64Max - 0xfff};
    return p.one_of(iovas);
  }

  // IOAS_UNMAP: exactly one mapping, part of one (ENOENT, IOMMUFD.IOAS_UNMAP.partial), one
  // and what follows, everything (iova 0, length U64_MAX), or a range of the world.
  void ioas_unmap(scenario::Scenario& sc, Picker& p) {
    const Arg ioas = pick_obj("ioas_id", ioas_list(sc, p), p);
    const auto areas = areas_of(ioas);
    const size_t mode = opt_.small ? p.pick(2) : p.pick(6);
    uint64_t iova = kAperture, length = 0x1000;
    if (mode == 1) {
      iova = 0;
      length = kU64Max;
    } else if (!areas.empty() && mode != 5) {
      const iommufd::Area& a = opt_.small ? areas.front() : p.one_of(areas);
      iova = a.start;
      length = a.last - a.start + 1;
      if (mode == 2) length = length > 0x1000 ? 0x1000 : length / 2; // cuts it
      if (mode == 3) length += 0x1000;                               // and what follows
      if (mode == 4) iova += std::min<uint64_t>(0x1000, length / 2); // its tail
    } else if (!opt_.small) {
      iova = fixed_iova(p);
      length = p.one_of(std::vector<uint64_t>{0x1000, 0x3000, 0});
    }
    add(sc, make_step("ioas_unmap", {ioas, num("iova", iova), num("length", length)}));
  }

  // IOAS_COPY: the pages of a mapping (or a page of it) into another IOAS or the same one,
  // at a fixed or an allocated dst_iova; read-only pages copied writeable are EPERM.
  void ioas_copy(scenario::Scenario& sc, Picker& p) {
    const auto all = ioas_list(sc, p);
    const Arg src = pick_obj("src_ioas_id", all, p);
    const Arg dst = pick_obj("dst_ioas_id", all, p);
    const auto areas = areas_of(src);
    uint64_t src_iova = kAperture, length = 0x1000;
    if (!areas.empty()) {
      const auto& a = p.one_of(areas);
      src_iova = a.start;
      length = p.coin() ? a.last - a.start + 1 : 0x1000;
    }
    std::vector<std::string> f = {"readable"};
    if (!p.one_in(3)) f.push_back("writeable");
    const bool fixed = p.coin();
    if (fixed) f.insert(f.begin(), "fixed_iova");
    std::vector<Arg> args = {dst, src, flags("flags", f), num("src_iova", src_iova),
                             num("length", length)};
    if (fixed) args.push_back(num("dst_iova", fixed_iova(p)));
    add(sc, make_step("ioas_copy", args));
  }

  // IOAS_IOVA_RANGES: room for none (EMSGSIZE once there is a range), one, or four ranges.
  void ioas_iova_ranges(scenario::Scenario& sc, Picker& p) {
    const Arg ioas = pick_obj("ioas_id", ioas_list(sc, p), p);
    add(sc, make_step("ioas_iova_ranges",
                      {ioas, num("num_iovas", p.one_of(std::vector<uint64_t>{0, 1, 4}))}));
  }

  // IOAS_ALLOW_IOVAS: none (allow all), a window at the aperture, one below it (EADDRINUSE
  // once a mock domain reserves it), start > last, or two overlapping (EINVAL).
  void ioas_allow_iovas(scenario::Scenario& sc, Picker& p) {
    const Arg ioas = pick_obj("ioas_id", ioas_list(sc, p), p);
    static const std::vector<std::vector<scenario::RangeV>> choices = {
        {},
        {{kAperture, kAperture + 0xfffff}},
        {{0, 0xfffff}},
        {{kAperture + 0x1000, kAperture}},
        {{kAperture, kAperture + 0x1fff}, {kAperture + 0x1000, kAperture + 0x2fff}}};
    scenario::List l;
    for (const auto& r : p.one_of(choices))
      l.items.emplace_back(r);
    add(sc, make_step("ioas_allow_iovas", {ioas, Arg{"ranges", scenario::Value{l}, {}}}));
  }

  // ---- devices and HWPTs (selftest.c, device.c, hw_pagetable.c) ----

  // MOCK_DOMAIN: a mock device bound and attached to an IOAS (an automatic HWPT, shared
  // with the IOAS's other compatible devices), or to a paging or nested HWPT.
  void mock_domain(scenario::Scenario& sc, Picker& p) {
    std::vector<std::string> pts = ioas_list(sc, p);
    std::vector<std::string> hwpts = live(ObjType::hwpt_paging);
    const auto nested = live(ObjType::hwpt_nested);
    hwpts.insert(hwpts.end(), nested.begin(), nested.end());
    const bool to_hwpt = !opt_.small && !hwpts.empty() && p.one_in(3);
    if (to_hwpt) pts = hwpts;
    const Arg pt = pick_obj("id", pts, p);
    std::vector<Arg> args = {pt, ref("out_stdev_id", fresh("S")), ref("out_idev_id", fresh("D"))};
    // Attached to an existing HWPT, out_hwpt_id is that HWPT: no new name for it.
    if (!to_hwpt) args.push_back(ref("out_hwpt_id", fresh("H")));
    add(sc, make_step("mock_domain", args));
  }

  std::string need_device(scenario::Scenario& sc, Picker& p) {
    if (live(ObjType::device).empty()) {
      need_ioas(sc, p);
      mock_domain(sc, p);
    }
    const auto l = live(ObjType::device);
    return l.empty() ? "" : (opt_.small ? l.back() : p.one_of(l));
  }
  Arg device(scenario::Scenario& sc, Picker& p, const std::string& key) {
    need_device(sc, p);
    return pick_obj(key, live(ObjType::device), p);
  }

  // HWPT_ALLOC of a paging HWPT on an IOAS: plain, a nesting parent, with dirty tracking.
  void hwpt_alloc_paging(scenario::Scenario& sc, Picker& p) { alloc_paging(sc, p, false); }

  bool alloc_paging(scenario::Scenario& sc, Picker& p, bool parent) {
    const Arg dev = device(sc, p, "dev_id");
    const Arg ioas = pick_obj("pt_id", live(ObjType::ioas), p);
    std::vector<std::string> f;
    if (parent || (nesting() && p.coin())) f.push_back("nest_parent");
    if (!opt_.small && has("dirty-tracking") && p.one_in(4)) f.push_back("dirty_tracking");
    return add(sc, make_step("hwpt_alloc",
                             {flags("flags", f), dev, ioas, ref("out_hwpt_id", fresh("P"))}));
  }

  std::vector<std::string> need_parents(scenario::Scenario& sc, Picker& p) {
    if (parents().empty()) alloc_paging(sc, p, true);
    return parents();
  }

  // HWPT_ALLOC of a nested HWPT: on a nesting parent (else EINVAL: IOMMUFD.HWPT_ALLOC.
  // nested_parent) or, in the newer uAPI, on a vIOMMU; the selftest data's iotlb is the
  // initial value of its four IOTLB entries.
  void hwpt_alloc_nested(scenario::Scenario& sc, Picker& p) { alloc_nested(sc, p); }

  bool alloc_nested(scenario::Scenario& sc, Picker& p) {
    std::vector<std::string> pts = need_parents(sc, p);
    if (viommu() && !opt_.small && !live(ObjType::viommu).empty() && p.one_in(3))
      pts = live(ObjType::viommu);
    const Arg dev = device(sc, p, "dev_id");
    const Arg pt = pick_obj("pt_id", pts, p);
    const uint64_t iotlb =
        opt_.small ? kIotlbValue
                   : p.one_of(std::vector<uint64_t>{kIotlbValue, iommufd::kTestIotlbDefault, 0});
    const Arg data{"data", scenario::Value{scenario::Record{{num("iotlb", iotlb)}}}, {}};
    return add(sc, make_step("hwpt_alloc", {dev, pt, ref("data_type", "selftest"), data,
                                            ref("out_hwpt_id", fresh("N"))}));
  }

  std::vector<std::string> need_nested(scenario::Scenario& sc, Picker& p) {
    if (live(ObjType::hwpt_nested).empty()) alloc_nested(sc, p);
    return live(ObjType::hwpt_nested);
  }

  // One iommu_hwpt_invalidate_selftest entry: an IOTLB id (mostly valid), FLAG_ALL, an id
  // past MOCK_NESTED_DOMAIN_IOTLB_ID_MAX (EINVAL), or an unknown flag (EOPNOTSUPP); rarely
  // FLAG_ALL with a bad id (documented as ignored; the 6.12 mock refuses it: see
  // conformance/findings/kernel-mock-linux-6.12.txt).
  std::vector<Arg> inval_entry(Picker& p) const {
    switch (p.pick(12)) {
    case 0:
    case 1:
      return {ref("flags", "all")};
    case 2:
    case 3:
      return {num("iotlb_id", 4)};
    case 4:
      return {num("flags", 2), num("iotlb_id", 0)};
    case 5:
      return {ref("flags", "all"), num("iotlb_id", 4)};
    default:
      return {num("iotlb_id", p.pick(4))};
    }
  }

  // HWPT_INVALIDATE of a nested HWPT with an array of 1..3 entries; a bad entry in the middle
  // stops the array there and entry_num reports the entries before it
  // (IOMMUFD.HWPT_INVALIDATE.entry_num).
  void hwpt_invalidate(scenario::Scenario& sc, Picker& p) {
    const auto nested = need_nested(sc, p);
    const Arg hwpt = pick_obj("hwpt_id", nested, p);
    std::vector<std::vector<Arg>> entries;
    if (opt_.small) {
      static const std::vector<std::vector<std::vector<Arg>>> small = {
          {{num("iotlb_id", 0)}},
          {{ref("flags", "all")}},
          {{num("iotlb_id", 1)}, {num("iotlb_id", 4)}}};
      entries = p.one_of(small);
    } else {
      const size_t n = 1 + p.pick(3);
      for (size_t i = 0; i < n; ++i)
        entries.push_back(inval_entry(p));
    }
    add(sc, make_step("hwpt_invalidate",
                      {hwpt, ref("data_type", "selftest"), records("entries", entries)}));
  }

  // MD_CHECK_IOTLB: usually the value the model holds (so a target that skipped an
  // invalidation fails here), else the initial value or 0, or an id past the last (EINVAL).
  void md_check_iotlb(scenario::Scenario& sc, Picker& p) {
    const auto nested = need_nested(sc, p);
    const Arg hwpt = pick_obj("id", nested, p);
    const uint64_t id = opt_.small ? p.pick(2) : (p.one_in(8) ? 4 : p.pick(4));
    uint64_t value = kIotlbValue;
    const auto* r = std::get_if<scenario::Ref>(&hwpt.value.v);
    const iommufd::Object* o = r ? object_of(r->name) : nullptr;
    if (o && o->type == ObjType::hwpt_nested && id < iommufd::kMockIotlbNum)
      value = std::get<iommufd::HwptNestedState>(o->data).iotlb[id];
    if (!opt_.small && p.one_in(4)) value = p.coin() ? kIotlbValue : 0;
    add(sc, make_step("md_check_iotlb", {hwpt, num("iotlb_id", id), num("iotlb", value)}));
  }

  // MD_CHECK_MAP: a mapping of the HWPT's IOAS against its user pages, or against other
  // pages (EINVAL).
  void md_check_map(scenario::Scenario& sc, Picker& p) {
    need_device(sc, p);
    const Arg hwpt = pick_obj("id", live(ObjType::hwpt_paging), p);
    std::vector<iommufd::Area> areas;
    const auto* r = std::get_if<scenario::Ref>(&hwpt.value.v);
    if (const iommufd::Object* o = r ? object_of(r->name) : nullptr;
        o && o->type == ObjType::hwpt_paging) {
      const iommufd::ObjId ioas = std::get<iommufd::HwptPagingState>(o->data).ioas;
      if (const iommufd::Object* a = m_.object(ioas); a && a->type == ObjType::ioas)
        for (const auto& [start, area] : std::get<iommufd::IoasState>(a->data).areas)
          areas.push_back(area);
    }
    uint64_t iova = kAperture, length = 0x1000, va = mem_base_;
    if (!areas.empty()) {
      const auto& a = p.one_of(areas);
      iova = a.start;
      length = a.last - a.start + 1;
      va = a.user_va;
    }
    if (p.one_in(4)) va = mem_base_ + kScratch;
    add(sc, make_step("md_check_map",
                      {hwpt, num("iova", iova), num("length", length), user("uptr", va)}));
  }

  // ---- in-kernel accesses (device.c iommufd_access_*, selftest.c staccess) ----

  void create_access(scenario::Scenario& sc, Picker& p) {
    const Arg ioas = pick_obj("id", ioas_list(sc, p), p);
    std::vector<std::string> f;
    if (opt_.small || p.coin()) f.push_back("needs_pin_pages");
    add(sc,
        make_step("create_access", {ioas, flags("flags", f), ref("out_access_fd", fresh("F"))}));
  }

  // Access fds not yet closed (a closed one now and then: EBADF / EBADFD).
  Arg access_fd(Picker& p) {
    std::vector<std::string> open, closed;
    for (const auto& n : named(Named::Kind::fd))
      if (n.front() == 'F')
        (m_.fd_live(uint32_t(names_.find(n)->value)) ? open : closed).push_back(n);
    if (!open.empty() && (closed.empty() || !p.one_in(6))) return ref("id", p.one_of(open));
    if (!closed.empty()) return ref("id", p.one_of(closed));
    return num("id", 0);
  }
  // The IOAS an access fd was created on (the create_access step's id).
  std::vector<iommufd::Area> areas_of_access(const scenario::Scenario& sc, const Arg& fd) const {
    const auto* r = std::get_if<scenario::Ref>(&fd.value.v);
    if (!r) return {};
    for (const auto& st : sc.steps) {
      if (st.op != "create_access") continue;
      bool mine = false;
      for (const auto& a : st.args)
        if (const auto* o = std::get_if<scenario::Ref>(&a.value.v))
          mine = mine || (a.key == "out_access_fd" && o->name == r->name);
      if (mine)
        for (const auto& a : st.args)
          if (a.key == "id") return areas_of(a);
    }
    return {};
  }

  // ACCESS_PAGES: pin a mapping (or its first page) through a pinning access; read-write
  // pins of read-only mappings are EPERM; a non-pinning access refuses (EOPNOTSUPP).
  void access_pages(scenario::Scenario& sc, Picker& p) {
    if (named(Named::Kind::fd).empty()) create_access(sc, p);
    const Arg fd = access_fd(p);
    const auto areas = areas_of_access(sc, fd);
    uint64_t iova = kAperture, length = 0x1000, va = mem_base_;
    if (!areas.empty()) {
      const auto& a = p.one_of(areas);
      iova = a.start;
      length = p.coin() ? a.last - a.start + 1 : 0x1000;
      va = a.user_va;
    }
    std::vector<std::string> f;
    if (p.coin()) f.push_back("write");
    add(sc,
        make_step("access_pages", {fd, flags("flags", f), num("iova", iova), num("length", length),
                                   user("uptr", va), ref("out_access_pages_id", fresh("X"))}));
  }

  // ACCESS_RW: a few bytes at or near a mapping's start, read or written.
  void access_rw(scenario::Scenario& sc, Picker& p) {
    if (named(Named::Kind::fd).empty()) create_access(sc, p);
    const Arg fd = access_fd(p);
    const auto areas = areas_of_access(sc, fd);
    uint64_t iova = areas.empty() ? kAperture : p.one_of(areas).start;
    iova += p.one_of(std::vector<uint64_t>{0, 0x10, 0xff8});
    std::vector<std::string> f;
    if (p.coin()) f.push_back("write");
    if (p.one_in(4)) f.push_back("slow_path");
    add(sc, make_step("access_rw", {fd, num("iova", iova),
                                    num("length", p.one_of(std::vector<uint64_t>{0x10, 0x100, 0})),
                                    mem("uptr", kScratch), flags("flags", f)}));
  }

  void destroy_access_pages(scenario::Scenario& sc, Picker& p) {
    std::vector<const Named*> pages;
    for (const auto& n : named_)
      if (n.kind == Named::Kind::pages) pages.push_back(&n);
    if (pages.empty()) return access_pages(sc, p);
    const Named& x = *p.one_of(pages);
    add(sc,
        make_step("destroy_access_pages", {ref("id", x.owner), ref("access_pages_id", x.name)}));
  }

  // close(): an access or vEVENTQ fd drops its hold (IOMMUFD.FD.close); a closed one EBADF.
  void close_fd(scenario::Scenario& sc, Picker& p) {
    const auto fds = named(Named::Kind::fd);
    if (fds.empty()) return create_access(sc, p);
    add(sc, make_step("close", {ref("fd", p.one_of(fds))}));
  }

  // DESTROY of any object the trace named: live ones (EBUSY while held: IOMMUFD.DESTROY.
  // ebusy) mostly, destroyed ones (ENOENT) sometimes, or 0.
  void destroy(scenario::Scenario& sc, Picker& p) {
    std::vector<std::string> alive, gone;
    for (const auto& n : named(Named::Kind::obj))
      (object_of(n) ? alive : gone).push_back(n);
    if (opt_.small) {
      // The newest object, or the oldest (usually held by something: EBUSY).
      if (alive.empty()) return ioas_alloc(sc, p);
      add(sc, make_step("destroy", {ref("id", p.coin() ? alive.front() : alive.back())}));
      return;
    }
    if (!alive.empty() && (gone.empty() || !p.one_in(5)))
      add(sc, make_step("destroy", {ref("id", p.one_of(alive))}));
    else if (!gone.empty())
      add(sc, make_step("destroy", {ref("id", p.one_of(gone))}));
    else
      add(sc, make_step("destroy", {num("id", p.coin() ? 0 : kNeverId)}));
  }

  // ---- vIOMMU objects (newer uAPI: viommu.c, eventq.c, selftest.c mock_viommu_*) ----

  std::vector<std::string> need_viommus(scenario::Scenario& sc, Picker& p) {
    if (live(ObjType::viommu).empty()) viommu_alloc(sc, p);
    return live(ObjType::viommu);
  }

  void viommu_alloc(scenario::Scenario& sc, Picker& p) {
    const auto pts = need_parents(sc, p);
    const Arg dev = device(sc, p, "dev_id");
    const Arg hwpt = pick_obj("hwpt_id", pts, p);
    add(sc, make_step("viommu_alloc",
                      {ref("type", "selftest"), dev, hwpt, ref("out_viommu_id", fresh("V"))}));
  }

  void vdevice_alloc(scenario::Scenario& sc, Picker& p) {
    const Arg v = pick_obj("viommu_id", need_viommus(sc, p), p);
    const Arg dev = device(sc, p, "dev_id");
    add(sc, make_step("vdevice_alloc",
                      {v, dev, num("virt_id", 1 + p.pick(2)), ref("out_vdevice_id", fresh("VD"))}));
  }

  void veventq_alloc(scenario::Scenario& sc, Picker& p) {
    const Arg v = pick_obj("viommu_id", need_viommus(sc, p), p);
    add(sc, make_step("veventq_alloc",
                      {v, ref("type", "selftest"), num("veventq_depth", 1 + p.pick(2)),
                       ref("out_veventq_id", fresh("Q")), ref("out_veventq_fd", fresh("QF"))}));
  }

  // HWPT_INVALIDATE of a vIOMMU: entries {vdev_id, cache_id} (selftest.c
  // mock_viommu_cache_invalidate(): an unknown vdev_id or cache_id > 3 stops the array);
  // then DEV_CHECK_CACHE of a device against the model's value.
  void viommu_invalidate(scenario::Scenario& sc, Picker& p) {
    const Arg v = pick_obj("hwpt_id", need_viommus(sc, p), p);
    std::vector<std::vector<Arg>> entries;
    const size_t n = 1 + p.pick(3);
    for (size_t i = 0; i < n; ++i) {
      std::vector<Arg> e = {num("vdev_id", 1 + p.pick(3)),
                            num("cache_id", p.one_in(5) ? 4 : p.pick(4))};
      if (p.one_in(5)) e.insert(e.begin(), ref("flags", "all"));
      entries.push_back(e);
    }
    add(sc, make_step("hwpt_invalidate",
                      {v, ref("data_type", "selftest"), records("entries", entries)}));
    const auto devs = live(ObjType::device);
    if (devs.empty()) return;
    const std::string d = p.one_of(devs);
    const uint64_t id = p.pick(4);
    const auto& dev = std::get<iommufd::DeviceState>(object_of(d)->data);
    add(sc, make_step("dev_check_cache",
                      {ref("id", d), num("cache_id", id), num("cache", dev.cache[id])}));
  }

  TraceOptions opt_;
  iommufd::Machine m_;
  scenario::Names names_;
  uint64_t mem_base_ = 0;
  std::vector<Action> actions_;
  std::vector<Named> named_;
  std::map<std::string, int> count_;
  std::set<std::string> clauses_;
};

} // namespace

std::vector<std::string> iommufd_features(const scenario::Scenario& sc) {
  std::set<std::string> used = {"iommufd"}, viommus;
  for (const auto& st : sc.steps)
    step_features(st, viommus, used);
  // In the order of scenario::known_features()' list.
  std::vector<std::string> out;
  for (const char* f : {"iommufd", "selftest", "nesting", "dirty-tracking", "viommu", "veventq"})
    if (used.count(f)) out.push_back(f);
  return out;
}

std::unique_ptr<TraceGen> make_iommufd_gen(const TraceOptions& opt) {
  return std::make_unique<IommufdGen>(opt);
}

} // namespace iommuspec::generators

#include "trace.h"

#include "trace_areas.h"

#include <algorithm>

namespace iommuspec::generators {

size_t RcPicker::pick(size_t n) {
  return n <= 1 ? 0 : *rc::gen::inRange<size_t>(0, n);
}

size_t ReplayPicker::pick(size_t n) {
  const size_t i = made_.size();
  const size_t v = i < forced_.size() ? std::min(forced_[i], n - 1) : 0;
  made_.push_back(v);
  ranges_.push_back(n);
  return v;
}

bool next_choices(const ReplayPicker& p, size_t fixed, std::vector<size_t>& forced) {
  const auto& made = p.made();
  const auto& ranges = p.ranges();
  size_t k = made.size();
  while (k > fixed && made[k - 1] + 1 >= ranges[k - 1])
    --k;
  if (k <= fixed) return false;
  forced.assign(made.begin(), made.begin() + long(k));
  ++forced.back();
  return true;
}

const std::vector<std::string>& trace_areas() {
  static const std::vector<std::string> areas = {"smmuv3", "vtd", "iommufd"};
  return areas;
}

bool area_supported(const std::string& area, const std::set<std::string>& features) {
  if (area == "smmuv3") return features.count("smmuv3") && features.count("stage1");
  if (area == "vtd") return features.count("vtd") && features.count("legacy");
  if (area == "iommufd") return features.count("iommufd") && features.count("selftest");
  return false;
}

std::unique_ptr<TraceGen> make_trace_gen(const TraceOptions& opt) {
  if (opt.area == "smmuv3") return make_smmuv3_gen(opt);
  if (opt.area == "vtd") return make_vtd_gen(opt);
  if (opt.area == "iommufd") return make_iommufd_gen(opt);
  return nullptr;
}

scenario::Scenario generate(const TraceOptions& opt, Picker& p) {
  scenario::Scenario sc;
  sc.area = opt.area;
  auto gen = make_trace_gen(opt);
  gen->begin(sc, p);
  const size_t n = 1 + p.pick(std::max<size_t>(opt.max_actions, 1));
  for (size_t i = 0; i < n; ++i)
    gen->action(sc, p);
  renumber(sc);
  return sc;
}

rc::Gen<scenario::Scenario> trace(const TraceOptions& opt) {
  return rc::gen::exec([opt] {
    RcPicker p;
    return generate(opt, p);
  });
}

scenario::Scenario trace_for(const TraceOptions& opt, uint64_t seed, uint64_t run) {
  // A key of its own per run, so that run N is the same trace whatever ran before it.
  const rc::Random random(rc::Random::Key{seed, run, 0x696f6d6d75737065ull, opt.max_actions});
  return trace(opt)(random, rc::kNominalSize).value();
}

void renumber(scenario::Scenario& sc) {
  int n = 0;
  for (auto& st : sc.steps)
    st.number = ++n;
}

void fit_headers(scenario::Scenario& sc) {
  if (sc.area != "iommufd") return;
  for (auto& h : sc.headers)
    if (h.key == "features") h.values = iommufd_features(sc);
}

scenario::Step make_step(const std::string& op, const std::vector<scenario::Arg>& args) {
  scenario::Step s;
  s.op = op;
  s.args = args;
  return s;
}

void append(scenario::Scenario& sc, scenario::Step st) {
  if (!st.args.empty() && st.args.front().key.empty()) {
    st.subject = std::get<scenario::Ref>(st.args.front().value.v).name;
    st.args.erase(st.args.begin());
  }
  sc.steps.push_back(std::move(st));
}

scenario::Arg num(const std::string& key, uint64_t v) {
  return {key, scenario::Value{scenario::Number{v}}, {}};
}

scenario::Arg ref(const std::string& key, const std::string& name) {
  return {key, scenario::Value{scenario::Ref{name, 0}}, {}};
}

scenario::Arg flags(const std::string& key, const std::vector<std::string>& names) {
  if (names.empty()) return num(key, 0);
  if (names.size() == 1) return ref(key, names.front());
  return {key, scenario::Value{scenario::Flags{names, 0}}, {}};
}

scenario::Arg records(const std::string& key, const std::vector<std::vector<scenario::Arg>>& recs) {
  scenario::List l;
  for (const auto& r : recs)
    l.items.emplace_back(scenario::Record{r});
  return {key, scenario::Value{l}, {}};
}

} // namespace iommuspec::generators

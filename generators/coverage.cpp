#include "coverage.h"

#include <algorithm>
#include <array>
#include <boost/graph/adjacency_list.hpp>
#include <cstdlib>
#include <fmt/format.h>
#include <optional>
#include <sstream>

namespace iommuspec::generators {

namespace {
std::string quoted(const std::string& s) {
  std::string q = "\"";
  for (char c : s) {
    if (c == '\n') {
      q += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}
} // namespace

std::string outcome_class(const std::string& allowed) {
  const size_t sp = allowed.find(' ');
  return sp == std::string::npos ? allowed : allowed.substr(0, sp);
}

namespace {

uint64_t number_arg(const std::vector<scenario::Arg>& args, const std::string& key, uint64_t dflt) {
  for (const auto& a : args)
    if (a.key == key)
      if (const auto* n = std::get_if<scenario::Number>(&a.value.v)) return n->v;
  return dflt;
}

std::string name_arg(const std::vector<scenario::Arg>& args, const std::string& key) {
  for (const auto& a : args)
    if (a.key == key)
      if (const auto* r = std::get_if<scenario::Ref>(&a.value.v)) return r->name;
  return "";
}

// The commands of a `cmdq` step: each record's op and arguments.
std::vector<const std::vector<scenario::Arg>*> commands(const scenario::Step& st) {
  std::vector<const std::vector<scenario::Arg>*> out;
  for (const auto& a : st.args)
    if (const auto* l = std::get_if<scenario::List>(&a.value.v))
      for (const auto& item : l->items)
        if (const auto* r = std::get_if<scenario::Record>(&item)) out.push_back(&r->args);
  return out;
}

// The hardware areas share one shape: per unit (stream, requester; three of them) whether
// its configuration translates (`t`), does not (`x`) or was never written (`-`), and `*`
// while a configuration write of it is not yet covered by a completed configuration-cache
// invalidation; `d` while a table entry was removed or overwritten and no completed
// invalidation of everything followed; `e` while the queue is stopped by an error. An
// area says which steps configure a unit, which ops are queue batches, and what a batch
// completed by its fence (CMD_SYNC, wait descriptor) invalidates.
class UnitAbstraction : public Abstraction {
public:
  std::string state() const override {
    std::string s;
    for (size_t i = 0; i < units_.size(); ++i)
      s += fmt::format("{}{}{}", i + 1, units_[i].config, units_[i].pending ? "*" : "");
    if (dirty_) s += " d";
    if (stopped_) s += " e";
    return s;
  }

  std::string apply(const scenario::Step& st, const std::string& allowed) override {
    const std::string cls = outcome_class(allowed);
    if (configures(st.op)) {
      Unit* u = unit(number_arg(st.args, "sid", 0));
      if (u) {
        if (const auto t = translates(st)) u->config = *t ? 't' : 'x';
        u->pending = true;
      }
      return st.op;
    }
    if (st.op == "unmap" || st.op == "desc") {
      dirty_ = true;
      return st.op;
    }
    if (queues(st.op)) {
      if (cls == "ok") complete(st);
      if (cls != "ok" && cls != "any") stopped_ = true;
      return st.op + ":" + cls;
    }
    if (st.op == "resume") {
      if (cls == "ok") stopped_ = false;
      return st.op + ":" + cls;
    }
    if (st.op == "dma" || st.op == "events" || st.op == "faults") return st.op + ":" + cls;
    return st.op;
  }

protected:
  struct Unit {
    char config = '-';
    bool pending = false;
  };
  virtual bool configures(const std::string& op) const = 0;
  // Whether a configuring step makes its unit translate; nullopt: it leaves that alone.
  virtual std::optional<bool> translates(const scenario::Step& st) const = 0;
  virtual bool queues(const std::string& op) const = 0;
  virtual std::string fence() const = 0;
  // The index of a unit's identifier, or units_.size() for none.
  virtual size_t slot(uint64_t sid) const = 0;
  // One command of a batch its fence completed.
  virtual void done(const std::vector<scenario::Arg>& cmd) = 0;

  Unit* unit(uint64_t sid) {
    const size_t i = slot(sid);
    return i < units_.size() ? &units_[i] : nullptr;
  }
  void all_configured() {
    for (auto& u : units_)
      u.pending = false;
  }
  void configured(uint64_t sid) {
    if (Unit* u = unit(sid)) u->pending = false;
  }
  void everything_invalidated() { dirty_ = false; }

private:
  void complete(const scenario::Step& st) {
    const auto cmds = commands(st);
    const bool fenced = std::any_of(cmds.begin(), cmds.end(),
                                    [&](const auto* c) { return name_arg(*c, "op") == fence(); });
    if (!fenced) return;
    for (const auto* c : cmds)
      done(*c);
  }

  std::array<Unit, 3> units_{};
  bool dirty_ = false, stopped_ = false;
};

// SMMUv3: units are StreamIDs 1..3; an STE translates unless abort, bypass or V=0; CFGI_ALL,
// CFGI_STE and CFGI_CD (of the stream) cover configuration writes (IHI 0070 3.21.3), and
// NH_ALL, NSNH_ALL and S12_VMALL everything cached from tables.
class SmmuAbstraction final : public UnitAbstraction {
  bool configures(const std::string& op) const override { return op == "ste" || op == "cd"; }
  std::optional<bool> translates(const scenario::Step& st) const override {
    if (st.op != "ste") return std::nullopt;
    const std::string config = name_arg(st.args, "config");
    return number_arg(st.args, "v", 1) != 0 && config != "abort" && config != "bypass";
  }
  bool queues(const std::string& op) const override {
    return op == "cmdq" || op == "cmd" || op == "sync";
  }
  std::string fence() const override { return "sync"; }
  size_t slot(uint64_t sid) const override { return sid >= 1 && sid <= 3 ? sid - 1 : 3; }
  void done(const std::vector<scenario::Arg>& c) override {
    const std::string op = name_arg(c, "op");
    if (op == "cfgi_all") all_configured();
    if (op == "cfgi_ste" || op == "cfgi_cd") configured(number_arg(c, "sid", 0));
    if (op == "tlbi_nh_all" || op == "tlbi_nsnh_all" || op == "tlbi_s12_vmall")
      everything_invalidated();
  }
};

// VT-d: units are source-ids 0x10, 0x18, 0x20; a context entry (legacy, with a DID) or
// RID_PASID entry (scalable) translates when present; context-cache and PASID-cache
// invalidations cover configuration writes (VT-d 6.5.2.1, 6.5.2.2), a global IOTLB
// invalidation everything cached from tables.
class VtdAbstraction final : public UnitAbstraction {
  bool configures(const std::string& op) const override { return op == "context" || op == "pasid"; }
  std::optional<bool> translates(const scenario::Step& st) const override {
    if (st.op != "pasid" && number_arg(st.args, "did", 0) == 0) return std::nullopt;
    return number_arg(st.args, "present", 1) != 0 && number_arg(st.args, "p", 1) != 0;
  }
  bool queues(const std::string& op) const override {
    return op == "invq" || op == "inv" || op == "wait";
  }
  std::string fence() const override { return "wait"; }
  size_t slot(uint64_t sid) const override {
    return sid == 0x10 ? 0 : sid == 0x18 ? 1 : sid == 0x20 ? 2 : 3;
  }
  void done(const std::vector<scenario::Arg>& d) override {
    const std::string op = name_arg(d, "op"), g = name_arg(d, "g");
    if ((op == "cc" && g != "device") || op == "pasid_cache") all_configured();
    if (op == "cc" && g == "device") configured(number_arg(d, "sid", 0));
    if (op == "iotlb" && g == "global") everything_invalidated();
  }
};

// iommufd: live objects per kind, counted 0, 1 or 2+ (IOAS `A`, paging HWPT `H`, nested
// HWPT `N`, device `D`, access `F`, vIOMMU `V`), `m` while some IOAS has mapped bytes, `t`
// while a nested HWPT has an IOTLB entry no completed invalidation cleared (selftest.c
// __mock_domain_alloc_nested() fills all four; mock_domain_cache_invalidate_user() zeroes
// them). Kept from the step text and the model's allowed outcome only: names bound by a
// step the model allows to succeed, and the outputs it pins (entry_num, length).
class IommufdAbstraction final : public Abstraction {
public:
  std::string state() const override {
    std::map<char, int> n;
    for (const auto& [name, kind] : kind_)
      ++n[kind];
    std::string s;
    for (char k : std::string("AHNDFV"))
      s += fmt::format("{}{}{}", s.empty() ? "" : " ", k, std::min(n[k], 2));
    for (const auto& [ioas, bytes] : mapped_)
      if (bytes && kind_.count(ioas)) {
        s += " m";
        break;
      }
    for (const auto& [hwpt, mask] : iotlb_)
      if (mask && kind_.count(hwpt)) {
        s += " t";
        break;
      }
    return s;
  }

  std::string apply(const scenario::Step& st, const std::string& allowed) override {
    const std::string cls = outcome_class(allowed);
    if (st.op == "hwpt_invalidate")
      invalidated(st, cls == "ok" ? ~0ull : pinned(allowed, "entry_num"));
    if (cls != "ok") return st.op + ":" + cls;
    bind(st, allowed);
    const std::string id = name_arg(st.args, "id");
    if (st.op == "destroy") remove(id);
    if (st.op == "close") kind_.erase(name_arg(st.args, "fd"));
    if (st.op == "ioas_map")
      mapped_[name_arg(st.args, "ioas_id")] += number_arg(st.args, "length", 0);
    if (st.op == "ioas_copy")
      mapped_[name_arg(st.args, "dst_ioas_id")] += number_arg(st.args, "length", 0);
    if (st.op == "ioas_unmap") {
      uint64_t& m = mapped_[name_arg(st.args, "ioas_id")];
      m -= std::min(m, pinned(allowed, "length"));
    }
    return st.op + ":" + cls;
  }

private:
  // A number the allowed outcome pins ("ok length=0x2000"), or 0.
  static uint64_t pinned(const std::string& allowed, const std::string& field) {
    const size_t at = allowed.find(" " + field + "=");
    if (at == std::string::npos) return 0;
    return std::strtoull(allowed.c_str() + at + field.size() + 2, nullptr, 0);
  }

  // The kinds of the names a successful step binds.
  void bind(const scenario::Step& st, const std::string& allowed) {
    for (const auto& a : st.args) {
      const auto* r = std::get_if<scenario::Ref>(&a.value.v);
      if (!r || a.key.rfind("out_", 0) != 0) continue;
      const char k = kind_of(st, a.key);
      // An automatic HWPT the device shares with another is no new object ("<obj N>").
      if (k == 'H' && allowed.find(a.key + "=<obj") != std::string::npos) continue;
      if (k) kind_[r->name] = k;
      if (k == 'N' && nested_value(st)) iotlb_[r->name] = 0xf;
      if (st.op == "mock_domain" && a.key != "out_stdev_id")
        with_stdev_[name_arg(st.args, "out_stdev_id")].push_back(r->name);
    }
  }

  static char kind_of(const scenario::Step& st, const std::string& key) {
    if (key == "out_ioas_id") return 'A';
    if (key == "out_idev_id") return 'D';
    if (key == "out_access_fd") return 'F';
    if (key == "out_viommu_id") return 'V';
    if (key == "out_hwpt_id")
      return st.op == "hwpt_alloc" && !name_arg(st.args, "data_type").empty() ? 'N' : 'H';
    return 0;
  }

  static uint64_t nested_value(const scenario::Step& st) {
    for (const auto& a : st.args)
      if (const auto* r = std::get_if<scenario::Record>(&a.value.v); r && a.key == "data")
        return number_arg(r->args, "iotlb", 0);
    return 0;
  }

  // DESTROY of a mock device (its SELFTEST object) unbinds its device and detaches it: an
  // automatic HWPT goes with its last device (IOMMUFD.DETACH.auto_domain).
  void remove(const std::string& name) {
    kind_.erase(name);
    auto it = with_stdev_.find(name);
    if (it == with_stdev_.end()) return;
    // (An automatic HWPT another device shares is counted gone too: the abstraction does not
    // follow IDs, and the share was not counted as a new object either.)
    for (const auto& n : it->second)
      kind_.erase(n);
    with_stdev_.erase(it);
  }

  // The first `done` entries of an invalidation of a nested HWPT took effect.
  void invalidated(const scenario::Step& st, uint64_t done) {
    auto it = iotlb_.find(name_arg(st.args, "hwpt_id"));
    if (it == iotlb_.end()) return;
    for (const auto* e : commands(st)) {
      if (done-- == 0) break;
      if (name_arg(*e, "flags") == "all")
        it->second = 0;
      else if (uint64_t id = number_arg(*e, "iotlb_id", 0); id < 4)
        it->second &= ~(1u << id);
    }
  }

  std::map<std::string, char> kind_;                           // live name -> kind
  std::map<std::string, std::vector<std::string>> with_stdev_; // stdev -> idev, auto HWPT
  std::map<std::string, uint64_t> mapped_;                     // IOAS -> bytes mapped
  std::map<std::string, uint32_t> iotlb_;                      // nested HWPT -> entries set
};

} // namespace

std::unique_ptr<Abstraction> make_abstraction(const std::string& area) {
  if (area == "smmuv3") return std::make_unique<SmmuAbstraction>();
  if (area == "vtd") return std::make_unique<VtdAbstraction>();
  if (area == "iommufd") return std::make_unique<IommufdAbstraction>();
  return nullptr;
}

bool TransitionGraph::add(const std::string& from, const std::string& label,
                          const std::string& to) {
  states_.insert(from);
  states_.insert(to);
  return edges_.insert({from, label, to}).second;
}

size_t TransitionGraph::common(const TransitionGraph& other) const {
  size_t n = 0;
  for (const auto& e : edges_)
    n += other.edges_.count(e);
  return n;
}

namespace {

struct EdgeProps {
  std::string label;
  bool exercised = true;
};
// Parallel edges are transitions with different labels between the same two states.
using Graph =
    boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS, std::string, EdgeProps>;

} // namespace

std::string TransitionGraph::dot(const TransitionGraph* reachable) const {
  Graph g;
  std::map<std::string, Graph::vertex_descriptor> index;
  auto vertex = [&](const std::string& s) {
    auto it = index.find(s);
    if (it != index.end()) return it->second;
    return index[s] = boost::add_vertex(s, g);
  };
  for (const auto& [from, label, to] : edges_)
    boost::add_edge(vertex(from), vertex(to), EdgeProps{label, true}, g);
  if (reachable)
    for (const auto& [from, label, to] : reachable->edges())
      if (!has(from, label, to))
        boost::add_edge(vertex(from), vertex(to), EdgeProps{label, false}, g);
  // Written by hand from the vertices and their out-edges: Boost's write_graphviz walks the
  // graph's edge_iterator, which GCC 12 at -O2 flags as maybe-uninitialized (a false
  // positive inside Boost 1.74, an error under -Werror).
  std::ostringstream os;
  os << "digraph coverage {\n  graph [rankdir=LR, fontsize=10];\n"
        "  node [shape=box, fontname=monospace, fontsize=9];\n"
        "  edge [fontname=monospace, fontsize=8];\n";
  for (auto [v, vend] = boost::vertices(g); v != vend; ++v) {
    os << "  n" << *v << " [label=" << quoted(g[*v]) << "];\n";
    for (auto [e, eend] = boost::out_edges(*v, g); e != eend; ++e)
      os << "  n" << *v << " -> n" << boost::target(*e, g) << " [label=" << quoted(g[*e].label)
         << (g[*e].exercised ? "" : ", style=dashed, color=grey, fontcolor=grey") << "];\n";
  }
  os << "}\n";
  return os.str();
}

} // namespace iommuspec::generators

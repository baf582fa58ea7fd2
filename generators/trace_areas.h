// The areas' generators (one file each). Internal to generators/.
#pragma once

#include "trace.h"

#include <map>
#include <set>
#include <string>

namespace iommuspec::generators {

// What a hardware-area generator has written into its translation tables, so that each
// next step is one the scenario compiler accepts: the live leaves of each table (iova ->
// size; a raw leaf counts, so that a later map unmaps it first), whether the tables below
// the low pages (a level-3 / level-1 leaf table under one level-2 entry) exist, and the
// tables whose level-2 entry above the low pages was rewritten raw (the compiler's tables
// are no longer where it put them: the low pages are left alone).
class Tables {
public:
  static bool is_low(uint64_t iova) { return iova < 0x200000; }
  std::map<uint64_t, uint64_t>& leaves(const std::string& t) { return mapped_[t]; }
  bool has(const std::string& t, uint64_t iova) const {
    const auto it = mapped_.find(t);
    return it != mapped_.end() && it->second.count(iova);
  }
  // The leaf may be mapped or unmapped: not a low page of a table rewritten raw.
  bool usable(const std::string& t, uint64_t iova) const {
    return !(is_low(iova) && frozen_.count(t));
  }
  void mapped(const std::string& t, uint64_t iova, uint64_t size) {
    mapped_[t][iova] = size;
    ever_[t].insert(iova);
  }
  // A raw entry may go in the low pages' level-2 entry or leaf table.
  bool raw_ok(const std::string& t) const {
    const auto it = ever_.find(t);
    const bool low = it != ever_.end() && (it->second.count(0x10000) || it->second.count(0x11000) ||
                                           it->second.count(0x12000));
    return low && !frozen_.count(t);
  }
  void raw_table_entry(const std::string& t) { frozen_.insert(t); }
  void raw_leaf(const std::string& t, uint64_t iova, uint64_t value) {
    if (value == 0)
      mapped_[t].erase(iova);
    else
      mapped_[t][iova] = 0x1000;
  }

private:
  std::map<std::string, std::map<uint64_t, uint64_t>> mapped_;
  std::map<std::string, std::set<uint64_t>> ever_;
  std::set<std::string> frozen_;
};

std::unique_ptr<TraceGen> make_smmuv3_gen(const TraceOptions& opt);
std::unique_ptr<TraceGen> make_vtd_gen(const TraceOptions& opt);
std::unique_ptr<TraceGen> make_iommufd_gen(const TraceOptions& opt);
// The features (scenario::known_features()) the steps of an iommufd trace use.
std::vector<std::string> iommufd_features(const scenario::Scenario& sc);

} // namespace iommuspec::generators

// The model's VT-d nested walk (vtd/walk.cpp walk_nested: scalable-mode PASID entry with
// PGTT=011b, a first stage whose paging-structure addresses and output are GPAs translated by
// the second stage) over symbolic memory and a symbolic access, as Z3 terms. Every level is
// vtd/walk_step.h's code (entry address, present / leaf / reserved tests, next-table and
// output addresses, first-stage permissions and A/D flags, the width, canonical and
// interrupt-range checks, the fault codes), the same the model runs with uint64_t; the control
// flow around it (the level loops and the order of the checks) follows walk.cpp's fs_walk /
// ss_walk (scalable mode) / check_interrupt_range line by line, and
// tests/vtd_nested_walk_test.cpp checks it against walk_nested on random tables (RapidCheck).
#pragma once

#include "nested.h"
#include "vtd/walk.h"

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace iommuspec::solvers {

// The request and the PASID entry's first-stage fields: input address, write, instruction
// fetch (ER), supervisor (PR); FSPTPTR, WPE, SRE, ERE.
struct VtdAccessZ {
  z3::expr addr, write, exec, priv;
};
struct VtdFsFieldsZ {
  z3::expr fsptptr, wpe, sre, ere;
};

// What a walk outcome says (vtd::Walk / Fault), as terms.
struct VtdWalkZ {
  z3::expr ok;                // no fault
  z3::expr pa;                // ok: the output address
  z3::expr read, write, exec; // ok: the effective permissions
  z3::expr page_size;         // ok
  z3::expr reason;            // !ok: Fault::reason
  z3::expr stage2;            // !ok: Fault::stage == 2
  z3::expr on_fs_walk;        // !ok: Fault::on_fs_walk
  z3::expr level;             // !ok: Fault::level
  z3::expr fs_level;          // !ok: Fault::fs_level
  z3::expr gpa;               // !ok: Fault::gpa
};

// A first-stage entry fetch at one level: whether the walk got there (its GPA went to the
// second stage), whether the entry was then read, its GPA, the PA read and the word; whether
// the walk then needed to set A/D in it (an update or, where the second stage maps the page
// read-only, fault 0x77), and the update it made.
struct VtdFetchZ {
  z3::expr reached, read, gpa, pa, word, ad_needed, ad_update;
};

// An address read or written, when `cond` holds (Walk::entries_read, Walk::ad_updates).
struct CondAddrZ {
  z3::expr cond, pa, value;
};

struct VtdNestedZ {
  VtdWalkZ w;
  std::array<VtdFetchZ, 6> fs; // by level 1..5 (index 0 unused)
  z3::expr final_reached;      // the first stage succeeded: its output GPA went to stage 2
  z3::expr final_gpa;
  std::vector<CondAddrZ> entries_read; // second- and first-stage entries, in walk order
  std::vector<CondAddrZ> ad_updates;
};

// A deliberate mistake in the walk, for the wrong encoders (the model's: none).
enum class VtdNestedMistake {
  none,
  fs_fetch_untranslated,  // a first-stage entry is read at its GPA, without the second stage
  final_gpa_untranslated, // the output GPA is the PA, without the second stage
  fetch_fault_as_output,  // a second-stage fault on a structure fetch reported as on the
                          // output (on_fs_walk clear, the output's code)
};

// `fs`: levels (4 or 5), haw, fl1gp (the rest comes from `f`); `ss`: the second stage.
VtdNestedZ vtd_nested_walk_z(const MemZ& mem, const vtd::FsConfig& fs, const VtdFsFieldsZ& f,
                             const vtd::SsConfig& ss, const VtdAccessZ& a,
                             VtdNestedMistake m = VtdNestedMistake::none);

// The nested walk as a plug-in of vtd.nested.isolation: the model's, or one with a mistake.
using VtdNestedWalkFn = VtdNestedZ(const MemZ& mem, const vtd::FsConfig& fs, const VtdFsFieldsZ& f,
                                   const vtd::SsConfig& ss, const VtdAccessZ& a);
struct VtdNestedWalker {
  std::string name;
  std::function<VtdNestedWalkFn> z;
};
VtdNestedWalker model_vtd_nested_walker();
std::vector<std::string> vtd_nested_walker_names();
std::optional<VtdNestedWalker> vtd_nested_walker(const std::string& name);

} // namespace iommuspec::solvers

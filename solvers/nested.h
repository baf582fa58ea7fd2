// The model's SMMUv3 nested walk (smmuv3/walk.cpp walk_nested: stage 1 whose table-walk
// addresses and output are IPAs translated by stage 2) over symbolic memory and a symbolic
// access, as Z3 terms. Every level is walk_step.h's code (descriptor address, type, output
// and next-table address, output-size check, permissions, CLASS), the same the model runs with
// uint64_t; the control flow around it (the level loop and the order of the checks) follows
// walk.cpp's s1_walk / s2_walk / combine_nested line by line, and tests/nested_walk_test.cpp
// checks it against walk_nested on random tables (RapidCheck).
#pragma once

#include "smmuv3/walk.h"
#include "z3ops.h"

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace iommuspec::solvers {

// Memory as a walk reads it: for a PA, whether memory is behind it and the word there
// (core/memory.h Memory::read64; a read with nothing behind it is the walk's external abort).
struct MemZ {
  std::function<std::pair<z3::expr, z3::expr>(const z3::expr& pa)> read;
};
// A concrete memory as MemZ (for the differential test, and the stage-2 tables of a proof).
MemZ memory_z(z3::context& c, const Memory& m);

// The access: IOVA, write, instruction fetch, privileged (smmuv3::Access).
struct AccessZ {
  z3::expr iova, write, exec, priv;
};

// What a walk outcome says (smmuv3::Walk / Fault), as terms.
struct WalkZ {
  z3::expr ok;       // no fault
  z3::expr pa;       // ok: the output address
  z3::expr cls;      // !ok: FaultClass as a number
  z3::expr stage2;   // !ok: Fault::stage == 2
  z3::expr on_walk;  // !ok: Fault::s2_on_s1_walk
  z3::expr level;    // !ok: Fault::level
  z3::expr ipa;      // !ok: Fault::ipa (stage-2 faults)
  z3::expr fetch_pa; // !ok: Fault::fetch_pa (walk_eabt)
};

// A stage-1 descriptor fetch at one level: whether the walk got there (its IPA went to stage
// 2), whether the descriptor was then read, its IPA, the PA read and the word.
struct FetchZ {
  z3::expr reached, read, ipa, pa, word;
};

struct NestedZ {
  WalkZ w;
  std::array<FetchZ, 4> s1; // by level 0..3 (levels above the start level: never reached)
  z3::expr final_reached;   // stage 1 succeeded: its output IPA went to stage 2
  z3::expr final_ipa;
};

// A deliberate mistake in the walk, for the wrong encoders (the model's: none).
enum class NestedMistake {
  none,
  s1_fetch_untranslated,  // a stage-1 descriptor is read at its IPA, without stage 2
  final_ipa_untranslated, // the output IPA is the PA, without stage 2
  tt_fault_as_in,         // a stage-2 fault on a table fetch reported as on the input (CLASS=IN)
};

NestedZ nested_walk_z(const MemZ& mem, const smmuv3::S1Config& s1, const z3::expr& ttb0,
                      const smmuv3::S2Config& s2, const AccessZ& a,
                      NestedMistake m = NestedMistake::none);

// The nested walk as a plug-in of smmuv3.nested.isolation: the model's, or one with a mistake.
using NestedWalkFn = NestedZ(const MemZ& mem, const smmuv3::S1Config& s1, const z3::expr& ttb0,
                             const smmuv3::S2Config& s2, const AccessZ& a);
struct NestedWalker {
  std::string name;
  std::function<NestedWalkFn> z;
};
NestedWalker model_nested_walker();
std::vector<std::string> nested_walker_names();
std::optional<NestedWalker> nested_walker(const std::string& name);

} // namespace iommuspec::solvers

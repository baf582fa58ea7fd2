// Properties of the scenario format (RapidCheck).
#include "scenario/scenario.h"
#include "scenario_gen.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

namespace iommuspec::scenario {
namespace {

RC_GTEST_PROP(ScenarioFormat, PrintParsePrintIsStable, ()) {
  const auto s = *generators::scenario_ast();
  const std::string p1 = print(s);
  std::vector<Diagnostic> d;
  const auto back = parse(p1, "gen.scn", d);
  RC_ASSERT(d.empty());
  RC_ASSERT(print(back) == p1);
  RC_ASSERT(back.steps.size() == s.steps.size());
}

RC_GTEST_PROP(ScenarioFormat, ArbitraryTextNeverCrashesAndErrorsHavePositions, ()) {
  const auto text = *rc::gen::container<std::string>(
      rc::gen::element('i', 'o', 'm', 'u', 'f', 'd', ' ', '\n', '1', ':', '=', '[', ']', '{', '}',
                       '|', '+', '-', '>', '"', '#', 'x', '0', '.', ','));
  std::vector<Diagnostic> d;
  (void)parse(text, "junk.scn", d);
  for (const auto& x : d) {
    RC_ASSERT(x.pos.line >= 1);
    RC_ASSERT(x.pos.col >= 1);
    RC_ASSERT(!x.message.empty());
  }
}

} // namespace
} // namespace iommuspec::scenario

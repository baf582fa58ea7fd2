// Report writers: the results.json contract of DESIGN.md, JUnit structure, atomic writes.
#include "results.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sstream>

namespace iommuspec::results {
namespace {

Run sample() {
  Run r;
  r.tool_version = "0.1.0";
  r.target = "model";
  r.profile = "linux-6.12";
  r.fingerprint = {{"kernel", "6.12.117"}};
  ScenarioResult a{
      "a", "a.scn", {"X.ok"}, "pass",
      0.5, "",      "",       {{1, "1: destroy id=A", "ok", "ok", "X.ok", "pass", ""}}};
  ScenarioResult b{"b<&>",
                   "b.scn",
                   {"X.fail", "X.ok"},
                   "fail",
                   0.25,
                   "step 2: bad",
                   "",
                   {{1, "1: ioas_alloc out_ioas_id=A", "ok", "ok", "X.ok", "pass", ""},
                    {2, "2: destroy id=A", "EBUSY", "ok", "X.fail", "fail", "bad"}}};
  ScenarioResult c{"c", "c.scn", {"X.unsup"}, "unsupported", 0, "lacks viommu", "", {}};
  r.scenarios = {a, b, c};
  finalize(r, {"X.ok", "X.fail", "X.unsup", "X.never"});
  return r;
}

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(Results, FinalizeCountsAndClauseStatuses) {
  const auto r = sample();
  EXPECT_EQ(r.summary.pass, 1);
  EXPECT_EQ(r.summary.fail, 1);
  EXPECT_EQ(r.summary.unsupported, 1);
  EXPECT_EQ(r.clauses.at("X.ok"), "pass"); // its step passed before the failing one
  EXPECT_EQ(r.clauses.at("X.fail"), "fail");
  EXPECT_EQ(r.clauses.at("X.unsup"), "unsupported");
  EXPECT_EQ(r.clauses.at("X.never"), "untested");
}

TEST(Results, JsonFollowsTheContract) {
  const auto dir = std::filesystem::temp_directory_path() / "iommuspec-reports-test";
  std::filesystem::create_directories(dir);
  const auto p = (dir / "results.json").string();
  write_json(sample(), p);
  EXPECT_FALSE(std::filesystem::exists(p + ".tmp"));
  const auto j = nlohmann::json::parse(slurp(p));
  EXPECT_EQ(j["tool"]["name"], "iommuspec");
  EXPECT_EQ(j["target"]["name"], "model");
  EXPECT_EQ(j["target"]["fingerprint"]["kernel"], "6.12.117");
  EXPECT_EQ(j["profile"], "linux-6.12");
  EXPECT_EQ(j["summary"]["fail"], 1);
  EXPECT_EQ(j["scenarios"][0]["steps"][0]["observed"], "ok");
  EXPECT_EQ(j["scenarios"][0]["steps"][0]["allowed"], "ok");
  EXPECT_EQ(j["scenarios"][1]["verdict"], "fail");
  EXPECT_EQ(j["clauses"]["X.never"], "untested");
}

TEST(Results, JunitEscapesAndCounts) {
  const auto dir = std::filesystem::temp_directory_path() / "iommuspec-reports-test";
  std::filesystem::create_directories(dir);
  const auto p = (dir / "junit.xml").string();
  write_junit(sample(), p);
  const auto x = slurp(p);
  EXPECT_NE(x.find("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""), std::string::npos);
  EXPECT_NE(x.find("name=\"b&lt;&amp;&gt;\""), std::string::npos);
  EXPECT_NE(x.find("<skipped message=\"lacks viommu\"/>"), std::string::npos);
}

TEST(Results, KnownFindingsMatchBothWays) {
  auto r = sample();
  r.scenarios[1].steps = {{1, "1: destroy id=A", "EBUSY", "ok", "X.fail", "fail", "bad"}};
  auto c = apply_findings(r, {{"b<&>", "X.fail"}});
  EXPECT_TRUE(c.unexpected.empty());
  EXPECT_TRUE(c.missing.empty());
  EXPECT_TRUE(r.scenarios[1].known_finding);
  finalize(r, {"X.ok"});
  EXPECT_EQ(r.summary.known_findings, 1);
  // The same scenario failing at another clause is a new deviation; a listed finding that
  // no longer fails is reported as gone.
  auto r2 = sample();
  r2.scenarios[1].steps = {{1, "1: destroy id=A", "EBUSY", "ok", "X.other", "fail", "bad"}};
  c = apply_findings(r2, {{"b<&>", "X.fail"}, {"a", "X.ok"}});
  ASSERT_EQ(c.unexpected.size(), 1u);
  ASSERT_EQ(c.missing.size(), 2u);
}

TEST(Results, AtomicWriteReplacesWhole) {
  const auto dir = std::filesystem::temp_directory_path() / "iommuspec-reports-test";
  std::filesystem::create_directories(dir);
  const auto p = (dir / "x.txt").string();
  write_atomically(p, "first");
  write_atomically(p, "second");
  EXPECT_EQ(slurp(p), "second");
  EXPECT_THROW(write_atomically((dir / "no/such/dir/x").string(), "y"), std::runtime_error);
}

} // namespace
} // namespace iommuspec::results

// The scenario parser: every malformed input gets file:line:col and a message; the printer
// round-trips the hand-written suites.
#include "runner/runner.h"
#include "scenario/encode.h"
#include "scenario/scenario.h"

#include <gtest/gtest.h>

namespace iommuspec::scenario {
namespace {

std::vector<Diagnostic> errors_of(std::string_view text) {
  std::vector<Diagnostic> d;
  auto sc = parse(text, "t.scn", d);
  if (d.empty()) lint(sc, d);
  return d;
}

struct Bad {
  const char* text;
  int line, col;
  const char* message_part;
};

class ParserErrors : public ::testing::TestWithParam<Bad> {};

TEST_P(ParserErrors, ReportFileLineCol) {
  const auto& b = GetParam();
  const auto d = errors_of(b.text);
  ASSERT_FALSE(d.empty()) << b.text;
  EXPECT_EQ(d.front().file, "t.scn");
  EXPECT_EQ(d.front().pos.line, b.line) << d.front().text();
  EXPECT_EQ(d.front().pos.col, b.col) << d.front().text();
  EXPECT_NE(d.front().message.find(b.message_part), std::string::npos) << d.front().text();
  EXPECT_EQ(d.front().text().rfind("t.scn:" + std::to_string(b.line) + ":", 0), 0u);
}

constexpr const char* kHead = "iommufd x\nclauses = IOMMUFD.DESTROY.ok\n";

INSTANTIATE_TEST_SUITE_P(
    Malformed, ParserErrors,
    ::testing::Values(
        Bad{"", 1, 1, "empty scenario"}, Bad{"123 x\n", 1, 1, "expected the area"},
        Bad{"iommufd\n", 1, 8, "expected the scenario id"},
        Bad{"iommufd x\n\"unterminated\n", 2, 1, "unterminated description"},
        Bad{"iommufd x\nclauses IOMMUFD.DESTROY.ok\n1: destroy id=1\n", 2, 9, "expected '='"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n{\n  mem M\n}\n1: destroy id=1\n", 4, 8,
            "mem region's size"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n{\n  dev D 1\n}\n1: destroy id=1\n", 4, 3,
            "unknown declaration"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n{\n  mem M 0x1000\n", 4, 1,
            "unterminated initial state"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n2: destroy id=1\n", 3, 1, "numbered 1, 2, 3"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n1 destroy id=1\n", 3, 3, "expected ':'"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n1: destroy id=\n", 3, 15, "expected a value"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n1: destroy id=0x\n", 3, 17, "hex digits"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n1: destroy id=0x1ffffffffffffffff\n", 3, 15,
            "64 bits"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n1: destroy id=[1, 2\n", 3, 20,
            "expected ',' or ']'"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n1: destroy id=1 -> \n", 3, 20,
            "'ok' or an errno"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n1: destroy id=1 -> EWHAT\n", 3, 17,
            "not 'ok' nor an errno"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n1: frobnicate id=1\n", 3, 1,
            "unknown operation"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n1: destroy ioas_id=1\n", 3, 12,
            "no argument 'ioas_id'"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n1: destroy id=A\n", 3, 12,
            "not a bound name"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n1: ioas_alloc out_ioas_id=A\n2: ioas_alloc "
            "out_ioas_id=A\n",
            4, 15, "already bound"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n1: ioas_map flags=fixed|readable\n", 3, 13,
            "'fixed' is not a name of flags"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n1: destroy id=1 id=2\n", 3, 17,
            "given twice"},
        Bad{"iommufd x\nclauses = IOMMUFD.NOPE\n1: destroy id=1\n", 2, 1, "unknown clause"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\nfeatures = warp\n1: destroy id=1\n", 3, 1,
            "unknown feature"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\nprofile = linux-2.4\n1: destroy id=1\n", 3, 1,
            "unknown profile"},
        Bad{"iommufd x\nfeatures = iommufd\n1: destroy id=1\n", 1, 1, "missing header 'clauses"},
        Bad{"smmu x\nclauses = IOMMUFD.DESTROY.ok\n1: destroy id=1\n", 1, 1, "unknown area"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n1: destroy id=1 ranges=[1..2]\n", 3, 17,
            "takes no 'ranges'"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n1: ioas_allow_iovas ranges=[{x=1}]\n", 3, 21,
            "start..last"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n{\n  mem M 0x1000\n}\n1: ioas_map "
            "user_va=M+0x2000\n",
            6, 13, "past the end of mem M"},
        Bad{"iommufd x\nclauses = IOMMUFD.DESTROY.ok\n", 2, 1, "no steps"}));

TEST(Parser, SeveralErrorsInOneFileAreAllReported) {
  const auto d = errors_of(std::string(kHead) + "1: destroy id=\n2: destroy id=1 x=\n");
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].pos.line, 3);
  EXPECT_EQ(d[1].pos.line, 4);
}

TEST(Parser, CommentsAndBlankLines) {
  const auto d = errors_of("# leading comment\n\niommufd x  # trailing\n\"a # in quotes\"\n"
                           "clauses = IOMMUFD.DESTROY.ok\n1: destroy id=1 # why\n");
  EXPECT_TRUE(d.empty()) << (d.empty() ? "" : d.front().text());
}

TEST(Printer, SuitesRoundTrip) {
  std::vector<std::string> errs;
  const auto files = conformance::collect_files({IOMMUSPEC_SUITES_DIR}, errs);
  ASSERT_FALSE(files.empty());
  for (const auto& f : files) {
    std::vector<Diagnostic> d;
    const auto a = parse_file(f, d);
    ASSERT_TRUE(d.empty()) << d.front().text();
    const std::string p1 = print(a);
    const auto b = parse(p1, f, d);
    ASSERT_TRUE(d.empty()) << f << ": " << d.front().text() << "\n" << p1;
    EXPECT_EQ(a, b) << f;
    EXPECT_EQ(print(b), p1) << f;
  }
}

} // namespace
} // namespace iommuspec::scenario

// solvers/: every property proves with the model's encoders, and finds a counterexample, with a
// scenario that reproduces it where one can, for deliberately wrong encoders (an off-by-one
// NUM, a wrong AM rounding, a splitter that drops the last page, an entry_num that counts one
// too many...) and for Linux 6.12's arithmetic where it differs. Any encoder plugs in the
// same way: the last tests write one here.
#include "solvers/prove.h"

#include <gtest/gtest.h>

namespace iommuspec::solvers {
namespace {

Result run(const Property& p) {
  return p.run(Options{});
}

Result run(const std::string& property, const std::string& encoder) {
  const auto p = property_with_encoder(property, encoder);
  EXPECT_TRUE(p.has_value()) << property << " " << encoder;
  return p ? run(*p) : Result{};
}

uint64_t value(const Result& r, const std::string& name) {
  for (const auto& v : r.values)
    if (v.name == name) return v.value;
  ADD_FAILURE() << "no value " << name;
  return 0;
}

class ModelProves : public testing::TestWithParam<std::string> {};

TEST_P(ModelProves, Proved) {
  const auto r = run(GetParam(), "model");
  EXPECT_EQ(r.verdict, Verdict::proved) << r.detail;
  EXPECT_TRUE(r.files.empty());
}

INSTANTIATE_TEST_SUITE_P(All, ModelProves,
                         testing::Values("smmuv3.range_tlbi.sound", "smmuv3.range_split.covers",
                                         "vtd.psi_am.covers", "vtd.piotlb_split.covers",
                                         "vtd.devtlb_size.covers", "queue.partial_completion",
                                         "smmuv3.nested.isolation", "vtd.nested.isolation"),
                         [](const auto& i) {
                           std::string n = i.param;
                           for (char& c : n)
                             if (c == '.') c = '_';
                           return n;
                         });

TEST(ProveWrong, SpanNumOffByOne) {
  const auto r = run("smmuv3.range_tlbi.sound", "num-off-by-one");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  ASSERT_EQ(r.files.size(), 1u); // the range's last page, missed by a whole page
}

TEST(ProveWrong, SpanWrapsPastTheTop) {
  const auto r = run("smmuv3.range_tlbi.sound", "wraps");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  EXPECT_GT(value(r, "addr"), UINT64_MAX - (uint64_t(1) << 52)); // only near the top
}

TEST(ProveWrong, SplitterDropsLastPage) {
  const auto r = run("smmuv3.range_split.covers", "drops-last-page");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  // The page missed is the range's last.
  EXPECT_EQ(value(r, "page"), value(r, "iova") + value(r, "size") - 1);
  ASSERT_EQ(r.files.size(), 1u); // the page, remapped, pinned fresh after the commands
  EXPECT_NE(r.files[0].text.find("-> ok pa=0x48000000"), std::string::npos) << r.files[0].text;
}

TEST(ProveWrong, SplitterNumOneTooMany) {
  const auto r = run("smmuv3.range_split.covers", "num-one-too-many");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  EXPECT_NE(r.detail.find("beyond"), std::string::npos) << r.detail;
  EXPECT_TRUE(r.files.empty()); // over-invalidation fails no target
}

TEST(ProveWrong, LinuxSplitterScaleOverflow) {
  // __arm_smmu_tlb_inv_range puts __ffs(num_pages) in the 5-bit SCALE field.
  const auto r = run("smmuv3.range_split.covers", "linux-6.12");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  EXPECT_GE(value(r, "size") >> 12, uint64_t(1) << 32) << r.detail;
  EXPECT_EQ(r.files.size(), 1u);
}

TEST(ProveWrong, LinuxWalkSplitterAddsAPage) {
  const auto r = run("smmuv3.range_split.covers", "linux-6.12-walk");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  EXPECT_TRUE(r.files.empty());
}

TEST(ProveWrong, PsiRoundsDown) {
  const auto r = run("vtd.psi_am.covers", "am-rounds-down");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  ASSERT_EQ(r.files.size(), 1u);
  EXPECT_NE(r.files[0].text.find("op=iotlb g=page"), std::string::npos);
}

TEST(ProveWrong, LinuxFirstStagePsiIgnoresMamv) {
  const auto r = run("vtd.psi_am.covers", "linux-6.12-first-stage");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  ASSERT_EQ(r.files.size(), 1u);
  EXPECT_NE(r.files[0].text.find("op=piotlb g=page_in_pasid"), std::string::npos);
}

TEST(ProveWrong, LinuxPageCountWrapsAtTheTop) {
  const auto r = run("vtd.psi_am.covers", "linux-6.12-nrpages");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  EXPECT_LT(value(r, "start"), 0x1000u);
  EXPECT_GE(value(r, "last"), UINT64_MAX - 0xfff);
}

TEST(ProveWrong, BlockSplitRoundsUp) {
  const auto r = run("vtd.piotlb_split.covers", "am-rounds-up");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  EXPECT_NE(r.detail.find("does not fit"), std::string::npos) << r.detail;
}

TEST(ProveWrong, DevTlbSizeBitOneLow) {
  const auto r = run("vtd.devtlb_size.covers", "size-bit-one-low");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  ASSERT_EQ(r.files.size(), 1u);
  EXPECT_NE(r.files[0].text.find("op=dev_tlb"), std::string::npos);
}

TEST(ProveWrong, EntryNumOneTooMany) {
  const auto r = run("queue.partial_completion", "entry-num-one-too-many");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  EXPECT_NE(r.detail.find("entry_num"), std::string::npos);
  ASSERT_EQ(r.files.size(), 1u);
  EXPECT_NE(r.files[0].text.find("-> EIO entry_num=0"), std::string::npos) << r.files[0].text;
}

TEST(ProveWrong, ConsumesFailingCommand) {
  const auto r = run("queue.partial_completion", "consumes-failing-command");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  ASSERT_EQ(r.files.size(), 1u);
  EXPECT_NE(r.files[0].text.find("CERROR_ILL consumed=0"), std::string::npos);
}

TEST(ProveWrong, NestedS1FetchUntranslated) {
  const auto r = run("smmuv3.nested.isolation", "s1-fetch-untranslated");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  EXPECT_NE(r.detail.find("descriptor is read at other than"), std::string::npos) << r.detail;
  EXPECT_EQ(value(r, "l0_pa"), value(r, "l0_ipa")); // read at the IPA itself
}

TEST(ProveWrong, NestedFinalIpaUntranslated) {
  const auto r = run("smmuv3.nested.isolation", "final-ipa-untranslated");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  EXPECT_NE(r.detail.find("successful walk's PA"), std::string::npos) << r.detail;
  EXPECT_EQ(value(r, "pa"), value(r, "out_ipa"));
}

TEST(ProveWrong, NestedTableFetchFaultAsInput) {
  const auto r = run("smmuv3.nested.isolation", "tt-fault-as-in");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  EXPECT_NE(r.detail.find("s2=1 class=in"), std::string::npos) << r.detail;
}

TEST(ProveWrong, VtdNestedFsFetchUntranslated) {
  const auto r = run("vtd.nested.isolation", "fs-fetch-untranslated");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  EXPECT_NE(r.detail.find("entry is read (or its A/D flags written) at other than"),
            std::string::npos)
      << r.detail;
  EXPECT_EQ(value(r, "l4_pa"), value(r, "l4_gpa")); // read at the GPA itself
}

TEST(ProveWrong, VtdNestedFinalGpaUntranslated) {
  const auto r = run("vtd.nested.isolation", "final-gpa-untranslated");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  EXPECT_NE(r.detail.find("successful walk's PA"), std::string::npos) << r.detail;
  EXPECT_EQ(value(r, "pa"), value(r, "out_gpa"));
}

TEST(ProveWrong, VtdNestedFetchFaultAsOutput) {
  const auto r = run("vtd.nested.isolation", "fetch-fault-as-output");
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  EXPECT_NE(r.detail.find("stage=2 on_fs_walk=0"), std::string::npos) << r.detail;
}

TEST(Prove, UnknownEncoder) {
  EXPECT_FALSE(property_with_encoder("vtd.psi_am.covers", "nonsense").has_value());
  EXPECT_FALSE(property_with_encoder("nonsense", "model").has_value());
}

// An encoder written here, in the model's style: a generic lambda over the value type.
TEST(ProvePlugIn, AlwaysDomainSelectiveCovers) {
  auto f = [](const auto& start, const auto&, const auto&) {
    using O = arith::Ops<std::decay_t<decltype(start)>>;
    return PsiDesc<std::decay_t<decltype(start)>>{O::truth(start, true), start, start};
  };
  EXPECT_EQ(run(psi_am_covers({"domain-selective", f, f})).verdict, Verdict::proved);
}

TEST(ProvePlugIn, OnePageAlwaysMisses) {
  auto f = [](const auto& start, const auto&, const auto&) {
    using O = arith::Ops<std::decay_t<decltype(start)>>;
    return PsiDesc<std::decay_t<decltype(start)>>{O::truth(start, false), start, O::lit(start, 0)};
  };
  const auto r = run(psi_am_covers({"one-page", f, f}));
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  EXPECT_GT(value(r, "last") >> 12, value(r, "start") >> 12);
}

// A nested walker written here: the model's, but every fault reported at stage 1.
TEST(ProvePlugIn, NestedEveryFaultAtStage1) {
  const NestedWalker wrong{"all-stage-1",
                           [](const MemZ& mem, const smmuv3::S1Config& s1, const z3::expr& ttb0,
                              const smmuv3::S2Config& s2, const AccessZ& a) {
                             NestedZ n = nested_walk_z(mem, s1, ttb0, s2, a);
                             n.w.stage2 = ttb0.ctx().bool_val(false);
                             return n;
                           }};
  const auto r = run(nested_isolation(wrong));
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  EXPECT_NE(r.detail.find("s2=0"), std::string::npos) << r.detail;
}

// A VT-d nested walker written here: the model's, but every fault reported at stage 1.
TEST(ProvePlugIn, VtdNestedEveryFaultAtStage1) {
  const VtdNestedWalker wrong{"all-stage-1",
                              [](const MemZ& mem, const vtd::FsConfig& fs, const VtdFsFieldsZ& f,
                                 const vtd::SsConfig& ss, const VtdAccessZ& a) {
                                VtdNestedZ n = vtd_nested_walk_z(mem, fs, f, ss, a);
                                n.w.stage2 = a.addr.ctx().bool_val(false);
                                return n;
                              }};
  const auto r = run(vtd_nested_isolation(wrong));
  ASSERT_EQ(r.verdict, Verdict::counterexample);
  EXPECT_NE(r.detail.find("stage=1"), std::string::npos) << r.detail;
}

TEST(ProveBoundaries, OnePerEncodingCase) {
  const auto files = boundary_scenarios();
  EXPECT_GE(files.size(), 14u);
  std::set<std::string> ids;
  for (const auto& f : files) {
    EXPECT_TRUE(ids.insert(f.id).second) << f.id;
    EXPECT_NE(f.text.find("Boundary found by"), std::string::npos);
  }
}

} // namespace
} // namespace iommuspec::solvers

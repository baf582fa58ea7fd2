// Hardware-level areas (smmuv3, vtd): the compiler builds what the README layouts say, bad
// steps are errors at their position, and the runner catches targets that keep stale
// translations, consume past a queue error or record the wrong fault.
#include "harness.h"
#include "hw/compile.h"
#include "runner/runner.h"
#include "scenario/scenario.h"
#include "smmuv3/format.h"
#include "vtd/format.h"

#include <functional>
#include <gtest/gtest.h>
#include <set>

namespace iommuspec::conformance {
namespace {

using test::parse_ok;

results::ScenarioResult run(const scenario::Scenario& sc, Target& t) {
  return run_scenario(sc, t, iommufd::Profile::linux_latest);
}

// The model target, with hooks that may change what it shows.
class HwLiar : public Target {
public:
  std::function<void(const hw::DmaRequest&, hw::DmaOutcome&, int)> on_dma;
  std::function<void(hw::QueueOutcome&)> on_submit;
  std::function<void(hw::RecordsOutcome&)> on_records;
  std::function<void(hw::RecordsOutcome&)> on_vevents;
  std::function<void(uint8_t&)> on_register_invalidate;

  std::set<std::string> lacks; // features it does not report

  HwLiar() : inner_(make_model_target(iommufd::Profile::linux_latest)) {}
  TargetInfo info() const override {
    auto i = inner_->info();
    i.name = "liar";
    for (const auto& f : lacks)
      i.features.erase(f);
    return i;
  }
  void reset() override { inner_->reset(); }
  uint64_t mem(uint64_t size) override { return inner_->mem(size); }
  iommufd::Observation execute(const iommufd::Call& c) override { return inner_->execute(c); }
  void hw_reset(const hwc::Setup& s) override {
    inner_->hw_reset(s);
    dmas_ = 0;
  }
  void hw_write(const std::vector<hw::Write>& ws) override { inner_->hw_write(ws); }
  hw::QueueOutcome hw_submit(const std::vector<uint64_t>& e) override {
    auto q = inner_->hw_submit(e);
    if (on_submit) on_submit(q);
    return q;
  }
  hw::QueueOutcome hw_resume() override { return inner_->hw_resume(); }
  uint8_t hw_register_invalidate(const std::vector<uint64_t>& e) override {
    uint8_t g = inner_->hw_register_invalidate(e);
    if (on_register_invalidate) on_register_invalidate(g);
    return g;
  }
  hw::DmaOutcome hw_dma(const hw::DmaRequest& r) override {
    auto o = inner_->hw_dma(r);
    if (on_dma) on_dma(r, o, ++dmas_);
    return o;
  }
  hw::ViommuOutcome hw_viommu(const hwc::ViommuCall& c) override { return inner_->hw_viommu(c); }
  hw::RecordsOutcome hw_vevents(const std::string& v) override {
    auto r = inner_->hw_vevents(v);
    if (on_vevents) on_vevents(r);
    return r;
  }
  hw::RecordsOutcome hw_records() override {
    auto r = inner_->hw_records();
    if (on_records) on_records(r);
    return r;
  }

private:
  std::unique_ptr<Target> inner_;
  int dmas_ = 0;
};

// A first-stage remap, made visible only by a PASID-based IOTLB invalidation and a wait.
constexpr const char* kVtdRemap = R"(vtd remap
clauses = VTD.INV.PIOTLB.page_scope VTD.INV.WAIT.complete
features = vtd scalable first_stage
1: table T stage=1 levels=4
2: map T iova=0x10000 pa=0x2000000 size=0x1000
3: context sid=0x0010
4: pasid sid=0x0010 pasid=0 pgtt=fs did=1 fs=T
5: dma sid=0x0010 iova=0x10000 -> ok pa=0x2000000
6: desc T iova=0x10000 level=1 value=0x2100067
7: dma sid=0x0010 iova=0x10000 -> any outcomes=[{pa=0x2000000}, {pa=0x2100000}]
8: invq descs=[{op=piotlb g=page_in_pasid did=1 pasid=0 addr=0x10000 am=0}, {op=wait}] -> ok consumed=2
9: dma sid=0x0010 iova=0x10000 -> ok pa=0x2100000
)";

TEST(HwRunner, VtdHonestTargetPasses) {
  HwLiar t;
  const auto r = run(parse_ok(kVtdRemap), t);
  EXPECT_EQ(r.verdict, "pass") << r.message;
}

TEST(HwRunner, VtdStaleAfterCompletedInvalidationIsCaught) {
  HwLiar t;
  // Keeps showing the page it first returned, whatever was invalidated.
  t.on_dma = [](const hw::DmaRequest&, hw::DmaOutcome& o, int) { o.pa = 0x2000000; };
  const auto r = run(parse_ok(kVtdRemap), t);
  EXPECT_EQ(r.verdict, "fail");
  ASSERT_GE(r.steps.size(), 9u);
  EXPECT_EQ(r.steps[6].verdict, "pass"); // step 7: stale is still allowed
  EXPECT_EQ(r.steps[8].verdict, "fail");
  EXPECT_NE(r.message.find("step 9"), std::string::npos) << r.message;
}

TEST(HwRunner, VtdQueueThatRunsPastAnInvalidDescriptorIsCaught) {
  HwLiar t;
  t.on_submit = [](hw::QueueOutcome& q) {
    if (!q.error.empty()) q = {q.consumed + 2, ""};
  };
  const auto r = run(parse_ok(R"(vtd iqe
clauses = VTD.IQ.unknown_type VTD.IQ.stop
features = vtd scalable
1: invq descs=[{op=wait}, {op=raw w0=0xf}, {op=wait}] -> IQE consumed=1
)"),
                     t);
  EXPECT_EQ(r.verdict, "fail");
  EXPECT_NE(r.message.find("IQE"), std::string::npos) << r.message;
}

constexpr const char* kVtdFault = R"(vtd fault
clauses = VTD.FAULT.legacy_permission VTD.FRCD.fields
features = vtd legacy second_stage
mode = legacy
1: table T stage=2 levels=4
2: map T iova=0x10000 pa=0x2000000 size=0x1000 perm=r
3: context sid=0x0010 did=1 tt=translated ss=T
4: dma sid=0x0010 iova=0x10000 write=1 -> NO_WRITE sid=0x0010 addr=0x10000 write=1
5: dma sid=0x0010 iova=0x11000 drain=0
6: faults -> ok count=1 overflow=0
)";

TEST(HwRunner, VtdFaultRecordFieldsAreJudged) {
  HwLiar honest;
  auto r = run(parse_ok(kVtdFault), honest);
  EXPECT_EQ(r.verdict, "pass") << r.message;

  HwLiar t; // records the fault under another requester
  t.on_dma = [](const hw::DmaRequest&, hw::DmaOutcome& o, int) {
    if (o.record.size() == 2) o.record[1] ^= 0x1;
  };
  r = run(parse_ok(kVtdFault), t);
  EXPECT_EQ(r.verdict, "fail");
  EXPECT_NE(r.message.find("step 4"), std::string::npos) << r.message;

  HwLiar lost; // loses the undrained record
  lost.on_records = [](hw::RecordsOutcome& rec) { rec.records.clear(); };
  r = run(parse_ok(kVtdFault), lost);
  EXPECT_EQ(r.verdict, "fail");
  EXPECT_NE(r.message.find("step 6"), std::string::npos) << r.message;
}

TEST(HwRunner, VtdPinTheModelRejectsIsAScenarioError) {
  HwLiar t;
  std::string text = kVtdRemap;
  text.replace(text.find("9: dma sid=0x0010 iova=0x10000 -> ok pa=0x2100000"),
               std::string_view("9: dma sid=0x0010 iova=0x10000 -> ok pa=0x2100000").size(),
               "9: dma sid=0x0010 iova=0x10000 -> ok pa=0x2000000");
  const auto r = run(parse_ok(text), t);
  EXPECT_EQ(r.verdict, "error");
  EXPECT_NE(r.message.find("model disagrees"), std::string::npos) << r.message;
}

TEST(HwRunner, SmmuStaleAfterTlbiAndSyncIsCaught) {
  const auto sc = parse_ok(R"(smmuv3 remap
clauses = SMMUV3.TLBI.NH_VA.scope SMMUV3.SYNC.complete
features = smmuv3 stage1
1: table T stage=1 granule=4k ia=48
2: map T iova=0x10000 pa=0x42000000 size=0x1000 perm=r|w
3: cd sid=1 tt=T asid=1 a=1 r=1
4: ste sid=1 config=s1
5: cmdq cmds=[{op=cfgi_ste sid=1 leaf=1}, {op=sync}] -> ok consumed=2
6: dma sid=1 iova=0x10000 -> ok pa=0x42000000
7: unmap T iova=0x10000 size=0x1000
8: map T iova=0x10000 pa=0x42100000 size=0x1000 perm=r|w
9: dma sid=1 iova=0x10000 -> any outcomes=[{pa=0x42000000}, {pa=0x42100000}]
10: cmdq cmds=[{op=tlbi_nh_va asid=1 addr=0x10000 leaf=1}, {op=sync}] -> ok consumed=2
11: dma sid=1 iova=0x10000 -> ok pa=0x42100000
)");
  HwLiar honest;
  EXPECT_EQ(run(sc, honest).verdict, "pass");
  HwLiar t;
  t.on_dma = [](const hw::DmaRequest&, hw::DmaOutcome& o, int) { o.pa = 0x42000000; };
  const auto r = run(sc, t);
  EXPECT_EQ(r.verdict, "fail");
  EXPECT_NE(r.message.find("step 11"), std::string::npos) << r.message;
}

// A vIOMMU that reports the physical SID, or a refused entry as handled, is caught.
TEST(HwRunner, SmmuVeventAndEntryNumAreJudged) {
  const auto sc = parse_ok(R"(smmuv3 vevent
clauses = SMMUV3.VIOMMU.vevent SMMUV3.VIOMMU.entry_num
features = smmuv3 stage1 stage2 nested viommu
1: table S stage=2 granule=4k ia=40 sl0=1
2: map S iova=0x40013000 pa=0x40013000 size=0x1000 perm=r
3: map S iova=0x80000000 pa=0x41e00000 size=0x200000 perm=r
4: table T stage=1 granule=4k ia=48 at=0x80000000 phys=0x41e00000
5: cd sid=3 tt=T asid=1 a=1 r=1
6: ste sid=3 config=nested s2=S vmid=5 s2_r=1
7: cmdq cmds=[{op=cfgi_ste sid=3 leaf=1}, {op=sync}] -> ok consumed=2
8: viommu V vmid=5
9: vdevice V vsid=0x20 sid=3
10: dma sid=3 iova=0x20000 drain=0
11: vevents V -> ok count=1
12: viommu_invalidate V cmds=[{op=tlbi_nh_all}, {op=cfgi_ste sid=3}] -> EIO entry_num=1
)");
  HwLiar honest;
  EXPECT_EQ(run(sc, honest).verdict, "pass") << run(sc, honest).message;

  HwLiar physical; // forwards the event with the physical SID
  physical.on_vevents = [](hw::RecordsOutcome& r) {
    for (auto& rec : r.records)
      rec[0] = (rec[0] & 0xffffffffull) | uint64_t(3) << 32;
  };
  auto r = run(sc, physical);
  EXPECT_EQ(r.verdict, "fail");
  EXPECT_NE(r.message.find("step 11"), std::string::npos) << r.message;
}

// ---- The VT-d compiler -----------------------------------------------------------------

std::optional<hwc::Compiled> compile_text(std::string_view text,
                                          std::vector<scenario::Diagnostic>& d) {
  const auto sc = parse_ok(text);
  return hwc::compile(sc, d);
}

uint64_t written(const hwc::Step& s, uint64_t pa) {
  for (const auto& w : s.writes)
    if (w.pa == pa) return w.value;
  return 0;
}

// A target whose devices cannot issue an access the scenario makes (here: with a PASID)
// reports the scenario unsupported, before any step, and names what it lacks.
TEST(HwRunner, AccessesADeviceCannotIssueAreUnsupported) {
  const auto sc = parse_ok(R"(vtd pasid-access
clauses = VTD.INV.PIOTLB.page_scope
features = vtd scalable first_stage
1: table T stage=1 levels=4
2: map T iova=0x10000 pa=0x2000000 size=0x1000
3: context sid=0x0010
4: pasid sid=0x0010 pasid=5 pgtt=fs did=1 fs=T
5: dma sid=0x0010 pasid=5 iova=0x10000
6: dma sid=0x0018 iova=0x10000 priv=0
)");
  std::vector<scenario::Diagnostic> diags;
  const auto c = hwc::compile(sc, diags);
  ASSERT_TRUE(c) << diags.front().text();
  EXPECT_EQ(c->setup.requesters, (std::vector<uint32_t>{0x10, 0x18}));
  EXPECT_EQ(c->setup.needs, (std::vector<std::string>{"dma_ssid"})); // VT-d: no privilege
  const auto sm = parse_ok(R"(smmuv3 unpriv
clauses = SMMUV3.WALK.translate
features = smmuv3
1: dma sid=3 iova=0x1000 priv=0 exec=1
)");
  const auto smc = hwc::compile(sm, diags);
  ASSERT_TRUE(smc);
  EXPECT_EQ(smc->setup.needs, (std::vector<std::string>{"dma_exec", "dma_unpriv"}));
  HwLiar t;
  const auto all = run(sc, t);
  EXPECT_EQ(all.verdict, "pass") << all.message;
  t.lacks = {"dma_ssid"};
  int dmas = 0;
  t.on_dma = [&](const hw::DmaRequest&, hw::DmaOutcome&, int) { ++dmas; };
  const auto r = run(sc, t);
  EXPECT_EQ(r.verdict, "unsupported");
  EXPECT_NE(r.message.find("dma_ssid"), std::string::npos) << r.message;
  EXPECT_EQ(dmas, 0);
}

TEST(VtdCompiler, ContextAndPasidFollowTheReadmeLayout) {
  std::vector<scenario::Diagnostic> d;
  const auto c = compile_text(R"(vtd layout
clauses = VTD.PASID.lookup
features = vtd scalable first_stage pasid
1: table T stage=1 levels=5
2: context sid=0x0290 paside=1
3: pasid sid=0x0290 pasid=0x41 pgtt=fs did=7 fs=T
)",
                              d);
  ASSERT_TRUE(c) << d.front().text();
  EXPECT_FALSE(c->setup.legacy);
  // Bus 2, devfn 0x90: the upper half of root entry 2, its table at 0x110000 + 2*0x2000 +
  // 0x1000, entry (0x90 & 0x7f) * 32.
  const auto& ctx = c->steps[1];
  const auto re = vtd::decode_sm_root_entry({written(ctx, 0x100020), written(ctx, 0x100028)});
  EXPECT_TRUE(re.upper_present);
  EXPECT_FALSE(re.lower_present);
  EXPECT_EQ(re.uctp, 0x115000u);
  const auto ce =
      vtd::decode_sm_context_entry({written(ctx, 0x115200), written(ctx, 0x115208), 0, 0});
  EXPECT_TRUE(ce.present);
  EXPECT_TRUE(ce.paside);
  EXPECT_EQ(ce.pasid_dir_ptr, 0x300000u);
  // PASID 0x41: directory entry 1 -> a fresh table, entry 1 of it.
  const auto& pe = c->steps[2];
  const auto pde = vtd::decode_pasid_dir_entry(written(pe, 0x300008));
  ASSERT_TRUE(pde.present);
  EXPECT_EQ(pde.pasid_table, 0x301000u);
  vtd::Words8 w{};
  for (size_t i = 0; i < 8; ++i)
    w[i] = written(pe, 0x301040 + 8 * i);
  const auto e = vtd::decode_pasid_entry(w);
  EXPECT_EQ(e.pgtt, vtd::Pgtt::first_stage);
  EXPECT_EQ(e.did, 7);
  EXPECT_EQ(e.flpm, 1); // five levels
  EXPECT_EQ(e.flptptr, 0x1000000u);
}

TEST(VtdCompiler, LegacyQueuesTwoWordDescriptors) {
  std::vector<scenario::Diagnostic> d;
  const auto c = compile_text(R"(vtd q
clauses = VTD.IQ.stop
features = vtd legacy
mode = legacy
1: invq descs=[{op=iotlb g=page did=3 addr=0x40000 am=2 ih=1}, {op=wait}]
)",
                              d);
  ASSERT_TRUE(c) << d.front().text();
  ASSERT_EQ(c->steps[0].entries.size(), 4u);
  const auto inv = vtd::decode_iotlb_inv({c->steps[0].entries[0], c->steps[0].entries[1], 0, 0});
  ASSERT_TRUE(inv);
  EXPECT_EQ(inv->g, vtd::IotlbGranularity::page);
  EXPECT_EQ(inv->did, 3);
  EXPECT_EQ(inv->addr, 0x40000u);
  EXPECT_EQ(inv->am, 2);
  EXPECT_TRUE(inv->ih);
}

TEST(VtdCompiler, BadStepsAreErrorsAtTheirPosition) {
  const std::pair<const char*, const char*> cases[] = {
      {"1: pasid sid=0x10 pasid=0 pgtt=fs did=1", "context step"},
      {"1: context sid=0x10 colour=3", "no field colour"},
      {"1: invq descs=[{op=frob}]", "unknown VT-d descriptor"},
      {"1: table T stage=3 levels=4", "stage= is 1 or 2"},
      {"1: map T iova=0x1000 pa=0x2000000", "no table named T"},
      {"1: dma sid=0x10 iova=0 ssid=1", "no argument ssid"},
      {"1: invq descs=[{op=iotlb g=everything}]", "g= is one of"},
      {"1: reginv op=iotlb g=global", "legacy mode only"},
  };
  for (const auto& [step, want] : cases) {
    const std::string text =
        std::string("vtd bad\nclauses = VTD.IQ.stop\nfeatures = vtd scalable\n") + step + "\n";
    std::vector<scenario::Diagnostic> d;
    EXPECT_FALSE(compile_text(text, d)) << step;
    ASSERT_FALSE(d.empty()) << step;
    EXPECT_NE(d.front().message.find(want), std::string::npos) << d.front().text();
    EXPECT_EQ(d.front().pos.line, 4) << step;
  }
}

// Register-based invalidation: a unit that skips it keeps the stale page; one that reports a
// finer granularity than requested (VT-d 6.5.1.2 allows only coarser) is caught; the queue
// and the registers do not mix in one scenario.
TEST(HwRunner, VtdRegisterInvalidationIsJudged) {
  const auto sc = parse_ok(R"(vtd reg
clauses = VTD.REG.granularity
features = vtd legacy second_stage register_inv
mode = legacy
1: table T stage=2 levels=4
2: map T iova=0x10000 pa=0x2000000 size=0x1000
3: context sid=0x0010 did=1 tt=translated ss=T
4: dma sid=0x0010 iova=0x10000 -> ok pa=0x2000000
5: desc T iova=0x10000 level=1 value=0x2100003
6: reginv op=iotlb g=domain did=1 -> ok
7: dma sid=0x0010 iova=0x10000 -> ok pa=0x2100000
)");
  HwLiar t;
  EXPECT_EQ(run(sc, t).verdict, "pass");
  t.on_register_invalidate = [](uint8_t& g) { g = 3; }; // page-selective: finer than domain
  const auto finer = run(sc, t);
  EXPECT_EQ(finer.verdict, "fail");
  EXPECT_NE(finer.message.find("granularity=3"), std::string::npos) << finer.message;
  t.on_register_invalidate = [](uint8_t& g) { g = 1; }; // global: coarser, allowed
  EXPECT_EQ(run(sc, t).verdict, "pass");
  t.on_register_invalidate = nullptr;
  t.on_dma = [](const hw::DmaRequest&, hw::DmaOutcome& o, int n) {
    if (n == 2) o.pa = 0x2000000; // the invalidation did nothing
  };
  EXPECT_EQ(run(sc, t).verdict, "fail");
  std::vector<scenario::Diagnostic> d;
  EXPECT_FALSE(compile_text("vtd mix\nclauses = VTD.REG.granularity\nfeatures = vtd legacy\n"
                            "mode = legacy\n1: invq descs=[{op=wait}]\n"
                            "2: reginv op=iotlb g=global\n",
                            d));
  ASSERT_FALSE(d.empty());
  EXPECT_NE(d.front().message.find("not both"), std::string::npos) << d.front().text();
}

// ---- The SMMUv3 compiler: two-level tables -----------------------------------------------

smmuv3::Ste8 words8(const hwc::Step& s, uint64_t pa) {
  smmuv3::Ste8 w{};
  for (size_t i = 0; i < 8; ++i)
    w[i] = written(s, pa + 8 * i);
  return w;
}

TEST(SmmuCompiler, TwoLevelStreamTableFollowsTheReadmeLayout) {
  std::vector<scenario::Diagnostic> d;
  const auto c = compile_text(R"(smmuv3 layout
clauses = SMMUV3.STE.two_level
features = smmuv3 strtab_2level
strtab = 2level
1: ste sid=70 config=bypass
2: ste sid=71 config=bypass l2=0x40380000
3: l1std sid=65 span=3
4: l1std sid=130 span=0 l2=0x40390000
)",
                              d);
  ASSERT_TRUE(c) << d.front().text();
  EXPECT_EQ(c->setup.strtab_fmt, 1u);
  EXPECT_EQ(c->setup.strtab_split, 6u);
  EXPECT_EQ(c->setup.strtab_log2, 8u);
  EXPECT_EQ(c->setup.strtab_base, 0x40000000u);
  // StreamID 70: L1STD 1 (Span 7 = SPLIT + 1) -> 0x4031_0000, STE 6 of that table.
  const auto l1 = smmuv3::decode_strtab_l1(written(c->steps[0], 0x40000008));
  EXPECT_EQ(l1.span, 7);
  EXPECT_EQ(l1.l2_ptr, 0x40310000u);
  const auto e = smmuv3::decode_ste(words8(c->steps[0], 0x40310000 + 6 * 64));
  EXPECT_TRUE(e.v);
  EXPECT_EQ(e.config, smmuv3::StreamConfig::bypass);
  // l2=: the STE in the table given, the L1STD untouched.
  for (const auto& w : c->steps[1].writes)
    EXPECT_EQ(w.pa & ~uint64_t(0x3f), 0x40380000u + 7 * 64);
  EXPECT_TRUE(smmuv3::decode_ste(words8(c->steps[1], 0x40380000 + 7 * 64)).v);
  // l1std: Span given, L2Ptr where it points now / as given.
  EXPECT_EQ(smmuv3::decode_strtab_l1(written(c->steps[2], 0x40000008)),
            (smmuv3::StrtabL1Desc{3, 0x40310000}));
  EXPECT_EQ(c->steps[3].writes.size(), 1u);
  EXPECT_EQ(c->steps[3].writes[0].pa, 0x40000010u);
  EXPECT_EQ(smmuv3::decode_strtab_l1(c->steps[3].writes[0].value),
            (smmuv3::StrtabL1Desc{0, 0x40390000}));
}

TEST(SmmuCompiler, TwoLevelCdTableFollowsTheReadmeLayout) {
  std::vector<scenario::Diagnostic> d;
  const auto c = compile_text(R"(smmuv3 layout
clauses = SMMUV3.CD.two_level
features = smmuv3 stage1 cd_2level substreams
1: cd sid=2 ssid=70 s1_fmt=1 asid=7
2: cd sid=2 ssid=71 asid=8
3: ste sid=2 config=s1 s1_fmt=1 s1_cd_max=8
4: l1cd sid=2 ssid=130
5: l1cd sid=2 ssid=70 v=0
6: cd sid=3 ssid=1030 s1_fmt=2 asid=9
)",
                              d);
  ASSERT_TRUE(c) << d.front().text();
  // L1CD 1 of stream 2 (SubstreamIDs 64-127) -> the first leaf; CDs 6 and 7 of it.
  EXPECT_EQ(smmuv3::decode_cd_l1(written(c->steps[0], 0x40012008)),
            (smmuv3::CdL1Desc{true, 0x40400000}));
  EXPECT_EQ(smmuv3::decode_cd(words8(c->steps[0], 0x40400000 + 6 * 64)).asid, 7);
  EXPECT_EQ(smmuv3::decode_cd(words8(c->steps[1], 0x40400000 + 7 * 64)).asid, 8);
  const auto e = smmuv3::decode_ste(words8(c->steps[2], 0x40000000 + 2 * 64));
  EXPECT_EQ(e.s1_fmt, 1);
  EXPECT_EQ(e.s1_context_ptr, 0x40012000u);
  // l1cd: a never-written L1CD gets the next leaf; v=0 keeps the L2Ptr.
  EXPECT_EQ(smmuv3::decode_cd_l1(written(c->steps[3], 0x40012010)),
            (smmuv3::CdL1Desc{true, 0x40410000}));
  EXPECT_EQ(c->steps[4].writes.size(), 1u);
  EXPECT_EQ(smmuv3::decode_cd_l1(c->steps[4].writes[0].value),
            (smmuv3::CdL1Desc{false, 0x40400000}));
  // 64 KiB leaves: SubstreamID 1030 = L1CD 1, CD 6 of a new leaf.
  EXPECT_EQ(smmuv3::decode_cd_l1(written(c->steps[5], 0x40013008)),
            (smmuv3::CdL1Desc{true, 0x40420000}));
  EXPECT_EQ(smmuv3::decode_cd(words8(c->steps[5], 0x40420000 + 6 * 64)).asid, 9);
}

TEST(SmmuCompiler, TwoLevelMistakesAreErrorsAtTheirPosition) {
  const std::pair<const char*, const char*> cases[] = {
      {"features = smmuv3\n1: l1std sid=1", "l1std needs strtab = 2level"},
      {"features = smmuv3\nstrtab = 2level\n1: ste sid=1 config=bypass",
       "needs the feature strtab_2level"},
      {"features = smmuv3 strtab_2level\nstrtab = 3level\n1: ste sid=1 config=bypass",
       "strtab = linear or strtab = 2level"},
      {"features = smmuv3\nstrtab_split = 8\n1: ste sid=1 config=bypass",
       "strtab_split goes with strtab = 2level"},
      {"features = smmuv3 stage1 substreams\n1: ste sid=1 config=s1 s1_fmt=1",
       "needs the feature cd_2level"},
      {"features = smmuv3 stage1 cd_2level substreams\n1: cd sid=1 ssid=3 asid=1\n2: ste sid=1 "
       "config=s1 "
       "s1_fmt=2",
       "laid out for S1Fmt=0 already"},
      {"features = smmuv3 stage1\n1: l1cd sid=1 ssid=3", "has no two-level CD table"},
      {"features = smmuv3\n1: ste sid=1 config=bypass l2=0x40380000", "l2= needs strtab = 2level"},
      {"features = smmuv3 stage1\n1: cd sid=1 ssid=3 asid=1", "needs the feature substreams"},
      {"features = smmuv3 stage1\n1: ste sid=1 config=s1 s1_dss=1", "need the feature substreams"},
      {"features = smmuv3 stage1\n1: dma sid=1 ssid=2 iova=0", "needs the feature substreams"},
      {"features = smmuv3 strtab_2level\nstrtab = 2level\n1: l1std sid=1 span=0\n2: ste sid=1 "
       "config=bypass",
       "has no STE slot"},
      {"features = smmuv3 stage1 cd_2level substreams\n1: ste sid=1 config=s1 s1_fmt=1\n2: l1cd "
       "sid=1 "
       "ssid=64 v=0\n3: cd sid=1 ssid=70 asid=1",
       "L1CD of this ssid has V=0"},
  };
  for (const auto& [body, want] : cases) {
    std::string text = std::string("smmuv3 bad\nclauses = SMMUV3.STE.two_level\n") + body + "\n";
    std::vector<scenario::Diagnostic> d;
    EXPECT_FALSE(compile_text(text, d)) << body;
    ASSERT_FALSE(d.empty()) << body;
    EXPECT_NE(d.front().message.find(want), std::string::npos) << d.front().text();
    EXPECT_GT(d.front().pos.line, 2) << body;
  }
}

} // namespace
} // namespace iommuspec::conformance

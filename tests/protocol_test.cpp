// The line protocol: calls and observations survive the wire; a server never trusts what
// it reads; the external target driven through `iommuspec serve-model` agrees with the model.
#include "harness.h"
#include "protocol/wire.h"
#include "targets/protocol_target.h"

#include <gtest/gtest.h>
#include <thread>
#include <unistd.h>

namespace iommuspec::protocol {
namespace {

TEST(Wire, CallRoundTrip) {
  auto c =
      test::CallBuilder(iommufd::OpId::ioas_map).set("ioas_id", 7).set("length", 0x1000).call();
  c.payload = {1, 2, 3};
  c.tail_nonzero = true;
  const std::string line = encode_call(c);
  ASSERT_EQ(line.rfind("CALL ioas_map 40 1 ", 0), 0u);
  std::string err;
  auto back = decode_call(std::string_view(line).substr(5, line.size() - 6), err);
  ASSERT_TRUE(back) << err;
  EXPECT_EQ(back->op, c.op);
  EXPECT_EQ(back->user_size, c.user_size);
  EXPECT_TRUE(back->tail_nonzero);
  EXPECT_EQ(back->arg, c.arg);
  EXPECT_EQ(back->payload, c.payload);
}

TEST(Wire, RetRoundTrip) {
  iommufd::Observation o;
  o.err = Errno::emsgsize;
  o.arg[3] = 0xab;
  o.payload = {9, 8};
  const std::string line = encode_ret(o, 32);
  std::string err;
  auto back = decode_ret(std::string_view(line).substr(4, line.size() - 5), err);
  ASSERT_TRUE(back) << err;
  EXPECT_EQ(back->err, Errno::emsgsize);
  EXPECT_EQ(back->arg[3], 0xab);
  EXPECT_EQ(back->payload, o.payload);
}

class Echo final : public Executor {
public:
  std::map<std::string, std::string> hello() override { return {{"name", "echo"}}; }
  void reset() override { ++resets; }
  std::optional<uint64_t> mem(uint64_t size) override { return 0x1000 + size; }
  iommufd::Observation call(const iommufd::Call& c) override {
    iommufd::Observation o;
    o.arg = c.arg;
    return o;
  }
  int resets = 0;
};

// Feed `input` to serve() and collect what it answers.
std::string converse(const std::string& input) {
  int in[2], out[2];
  EXPECT_EQ(pipe(in), 0);
  EXPECT_EQ(pipe(out), 0);
  Echo ex;
  std::thread srv([&] {
    serve(ex, in[0], out[1]);
    close(out[1]);
  });
  write_all(in[1], input);
  close(in[1]);
  std::string all;
  char buf[4096];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;)
    all.append(buf, size_t(n));
  srv.join();
  close(in[0]);
  close(out[0]);
  return all;
}

TEST(Serve, AnswersEveryRequestAndRefusesGarbage) {
  const std::string reply =
      converse("HELLO 1\nHELLO 2\nMEM 4096\nMEM -1\nMEM 99999999999999\nRESET\nFROB\n"
               "CALL nosuchop 8 0 00 -\nCALL destroy 8 0 zz -\nCALL destroy 8 2 00 -\n"
               "CALL destroy 8 0 " +
               std::string(400, '0') +
               " -\nCALL destroy 8 0 0800000001000000 -\n"
               "BYE\nHELLO 1\n");
  std::vector<std::string> lines;
  for (size_t b = 0, e; (e = reply.find('\n', b)) != std::string::npos; b = e + 1)
    lines.push_back(reply.substr(b, e - b));
  ASSERT_EQ(lines.size(), 13u) << reply;
  EXPECT_EQ(lines[0], "OK name=echo");
  EXPECT_EQ(lines[1].rfind("ERR protocol version", 0), 0u);
  EXPECT_EQ(lines[2], "OK 8192");
  EXPECT_EQ(lines[3].rfind("ERR", 0), 0u);
  EXPECT_EQ(lines[4].rfind("ERR", 0), 0u);
  EXPECT_EQ(lines[5], "OK");
  EXPECT_EQ(lines[6].rfind("ERR unknown request", 0), 0u);
  EXPECT_EQ(lines[7], "ERR unknown op nosuchop");
  EXPECT_EQ(lines[8].rfind("ERR bad arg hex", 0), 0u);
  EXPECT_EQ(lines[9].rfind("ERR tail", 0), 0u);
  EXPECT_EQ(lines[10].rfind("ERR bad arg hex", 0), 0u); // 200 bytes > 96
  EXPECT_EQ(lines[11].rfind("RET 0 0800000001000000", 0), 0u);
  EXPECT_EQ(lines[12], "OK"); // BYE ends the session: nothing after it is read
}

TEST(Serve, OverlongLineIsRefusedNotBuffered) {
  const std::string reply = converse(std::string(kMaxLine + 10, 'x') + "\nRESET\n" +
                                     std::string(2 * kMaxLine + 70000, 'y') + "\nRESET\n");
  EXPECT_EQ(reply, "ERR line too long\nOK\nERR line too long\nOK\n");
}

TEST(ExternalTarget, ServeModelAgreesWithTheModel) {
  auto t = conformance::make_external_target(std::string(IOMMUSPEC_BIN) +
                                             " serve-model --profile linux-6.12");
  const auto info = t->info();
  EXPECT_EQ(info.name, "external");
  EXPECT_EQ(info.profile, iommufd::Profile::linux_6_12);
  EXPECT_TRUE(info.features.count("selftest"));
  const auto r = test::run_text("iommufd e\nclauses = IOMMUFD.DESTROY.ebusy\n"
                                "1: ioas_alloc out_ioas_id=A\n2: mock_domain id=A out_stdev_id=S "
                                "out_hwpt_id=H out_idev_id=D\n3: destroy id=A -> EBUSY\n",
                                iommufd::Profile::linux_6_12);
  EXPECT_EQ(r.verdict, "pass");
  std::vector<scenario::Diagnostic> d;
  const auto sc =
      scenario::parse("iommufd e\nclauses = IOMMUFD.DESTROY.ebusy\n{\n  mem M 0x4000\n}\n"
                      "1: ioas_alloc out_ioas_id=A\n2: ioas_map ioas_id=A flags=readable "
                      "user_va=M length=0x2000\n3: destroy id=A\n",
                      "e.scn", d);
  ASSERT_TRUE(d.empty());
  const auto r2 = conformance::run_scenario(sc, *t, iommufd::Profile::linux_6_12);
  EXPECT_EQ(r2.verdict, "pass") << r2.message;
}

TEST(ExternalTarget, APeerThatDiesIsATargetError) {
  EXPECT_THROW(conformance::make_external_target("/bin/false"), conformance::TargetError);
  try {
    conformance::make_external_target("/bin/echo garbage");
    FAIL() << "no error";
  } catch (const conformance::TargetError& e) {
    // Refused when our request reached it, or gone with its last line when it exited first.
    const std::string what = e.what();
    EXPECT_TRUE(what.find("refused: garbage") != std::string::npos ||
                what.find("its last line: garbage") != std::string::npos)
        << what;
  }
}

} // namespace
} // namespace iommuspec::protocol

#include "kernel/kernel.h"

namespace iommuspec::kernel {
namespace {

TEST(KernelConsole, TroubleIsFoundAndQuoted) {
  EXPECT_EQ(trouble_in("iommufd: boot\nrandom: crng init done\n"), "");
  EXPECT_EQ(trouble_in("ok\n[    2.1] WARNING: CPU: 0 PID: 1 at drivers/iommu/iommufd/main.c:301 "
                       "iommufd_fops_release+0x1\n[    2.2] Modules linked in:\n"),
            "kernel reported: [    2.1] WARNING: CPU: 0 PID: 1 at drivers/iommu/iommufd/main.c:301 "
            "iommufd_fops_release+0x1");
  EXPECT_NE(trouble_in("BUG: kernel NULL pointer dereference, address: 0000000000000008\n")
                .find("NULL pointer"),
            std::string::npos);
  EXPECT_NE(trouble_in("Kernel panic - not syncing: Attempted to kill init!\n"), "");
}

} // namespace
} // namespace iommuspec::kernel

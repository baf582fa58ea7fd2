// Tests of range.h: the generic range arithmetic with uint64_t (what machine.cpp runs) and
// the splitter range_tlbi_commands. solvers/ proves the same code for all inputs; these pin
// hand-computed cases and cross-check the splitter against the machine's command checks.
#include "smmuv3/format.h"
#include "smmuv3/machine.h"
#include "smmuv3/range.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

namespace iommuspec::smmuv3 {
namespace {

constexpr uint64_t k4K = 0x1000, k2M = 0x200000;

RangeTlbi cmd(uint64_t addr, uint8_t tg, uint8_t scale, uint8_t num, uint8_t ttl) {
  return {addr, tg, scale, num, ttl};
}

TEST(SmmuV3Range, LevelShiftMatchesFormat) {
  for (uint64_t tg = 1; tg <= 3; ++tg)
    for (int level = 0; level <= 3; ++level) {
      const Granule g = tg == 1 ? Granule::g4k : tg == 2 ? Granule::g16k : Granule::g64k;
      EXPECT_EQ(tg_level_shift<uint64_t>(tg, uint64_t(level)), level_shift(g, level))
          << "tg " << tg << " level " << level;
    }
}

TEST(SmmuV3Range, SpanIsTheArchitecturalRange) {
  // [A] 4.4.1.1: ((NUM+1)*2^SCALE)*granule from Addr; TG = 0: the one address.
  auto s = tlbi_span<uint64_t>(0x10000, 1, 1, 1, true);
  EXPECT_EQ(s.lo, 0x10000u);
  EXPECT_EQ(s.hi, 0x13fffu);
  s = tlbi_span<uint64_t>(0x10000, 0, 5, 5, true);
  EXPECT_EQ(s.hi, 0x10000u);
  s = tlbi_span<uint64_t>(0x10000, 1, 5, 5, false); // no RIL: the fields are RES0
  EXPECT_EQ(s.hi, 0x10000u);
  // Past the top: no wrap.
  s = tlbi_span<uint64_t>(0xffff'ffff'ffff'f000ull, 1, 0, 1, true);
  EXPECT_EQ(s.hi, ~uint64_t(0));
}

TEST(SmmuV3Range, BaseAlignmentFollowsTheTable) {
  // 4KB TTL=0b10: Address[20:12] zero; 16KB TTL=0b11: Address[13:12]; 64KB 0b00: [15:12].
  EXPECT_TRUE(range_base_aligned<uint64_t>(k2M, 1, 2));
  EXPECT_FALSE(range_base_aligned<uint64_t>(k2M + k4K, 1, 2));
  EXPECT_FALSE(range_base_aligned<uint64_t>(0x1000, 2, 3));
  EXPECT_TRUE(range_base_aligned<uint64_t>(0x4000, 2, 3));
  EXPECT_FALSE(range_base_aligned<uint64_t>(0x8000, 3, 0));
}

TEST(SmmuV3Range, ReservedCombination) {
  EXPECT_TRUE(range_reserved<uint64_t>(1, 0, 0, 0));
  EXPECT_FALSE(range_reserved<uint64_t>(1, 0, 0, 3));
  EXPECT_TRUE(range_reserved<uint64_t>(2, 0, 0, 1)); // 16KB TTL=0b01 counts as 0b00
  EXPECT_FALSE(range_reserved<uint64_t>(0, 0, 0, 0));
}

TEST(SmmuV3Range, SplitterWindows) {
  // 4 pages: one command, SCALE 2.
  EXPECT_EQ(range_tlbi_commands(0x10000, 4 * k4K, 1), std::vector{cmd(0x10000, 1, 2, 0, 0)});
  // 35 pages = 0b100011: [L]'s windows, 3 pages then 32.
  EXPECT_EQ(range_tlbi_commands(0x10000, 35 * k4K, 1),
            (std::vector{cmd(0x10000, 1, 0, 2, 0), cmd(0x13000, 1, 5, 0, 0)}));
  // One page without TTL: the single-address form (not the Reserved NUM = SCALE = TTL = 0).
  EXPECT_EQ(range_tlbi_commands(0x10000, k4K, 1), std::vector{cmd(0x10000, 0, 0, 0, 0)});
  // One page with TTL 3: a range command.
  EXPECT_EQ(range_tlbi_commands(0x10000, k4K, 1, 3), std::vector{cmd(0x10000, 1, 0, 0, 3)});
  EXPECT_TRUE(range_tlbi_commands(0x10000, 0, 1).empty());
}

TEST(SmmuV3Range, SplitterRoundsToPages) {
  // Two bytes across a page boundary: both pages.
  EXPECT_EQ(range_tlbi_commands(0x10fff, 2, 1), std::vector{cmd(0x10000, 1, 1, 0, 0)});
  // 16KB granule: 0x5000..0x8fff touches pages 0x4000 and 0x8000.
  EXPECT_EQ(range_tlbi_commands(0x5000, 0x4000, 2), std::vector{cmd(0x4000, 2, 1, 0, 0)});
}

TEST(SmmuV3Range, SplitterKeepsTtlOnlyWhenAligned) {
  EXPECT_EQ(range_tlbi_commands(k2M, 2 * k2M, 1, 2), std::vector{cmd(k2M, 1, 10, 0, 2)});
  EXPECT_EQ(range_tlbi_commands(k2M + k4K, k2M, 1, 2).front().ttl, 0);
  EXPECT_EQ(range_tlbi_commands(0, uint64_t(1) << 36, 2, 1).front().ttl, 0); // 16KB 0b01
}

TEST(SmmuV3Range, SplitterCapsScale) {
  // 2^32 pages (16 TiB): SCALE is 5 bits, so 31 with NUM + 1 = 2 ([L] would write 32 & 31 = 0).
  EXPECT_EQ(range_tlbi_commands(0, uint64_t(1) << 44, 1), std::vector{cmd(0, 1, 31, 1, 0)});
  // The largest 48-bit range: 2^36 pages, NUM + 1 = 32.
  EXPECT_EQ(range_tlbi_commands(0, uint64_t(1) << 48, 1), std::vector{cmd(0, 1, 31, 31, 0)});
}

// Every command is legal on the machine and the spans tile the rounded range.
RC_GTEST_PROP(SmmuV3RangeProp, CommandsTileTheRange, ()) {
  const uint8_t tg = *rc::gen::inRange<uint8_t>(1, 4);
  const uint64_t limit = uint64_t(1) << (tg == 3 ? 52 : 48);
  const uint64_t iova = *rc::gen::inRange<uint64_t>(0, limit);
  const uint64_t size = *rc::gen::inRange<uint64_t>(1, limit - iova + 1);
  const uint64_t g = uint64_t(1) << tg_granule_shift<uint64_t>(tg);
  const auto cmds = range_tlbi_commands(iova, size, tg);
  RC_ASSERT(!cmds.empty());
  RC_ASSERT(cmds.size() <= 8u);
  uint64_t next = iova & ~(g - 1);
  for (const auto& c : cmds) {
    const Command x = CmdTlbiNhVa{.num = c.num,
                                  .scale = c.scale,
                                  .asid = 1,
                                  .leaf = true,
                                  .ttl = c.ttl,
                                  .tg = c.tg,
                                  .addr = c.addr};
    RC_ASSERT(decode_command(encode(x)) == x); // every field fits
    RC_ASSERT(command_error(x, Features{}).empty());
    const auto s = tlbi_span<uint64_t>(c.addr, c.tg, c.scale, c.num, true);
    RC_ASSERT(s.lo == next);
    next = c.tg == 0 ? s.lo + g : s.hi + 1;
  }
  RC_ASSERT(next == (((iova + size - 1) | (g - 1)) + 1));
}

} // namespace
} // namespace iommuspec::smmuv3

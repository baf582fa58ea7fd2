// The range TLBI splitter with concrete values (range.h).
#include "smmuv3/range.h"

namespace iommuspec::smmuv3 {

std::vector<RangeTlbi> range_tlbi_commands(uint64_t iova, uint64_t size, uint8_t tg, uint8_t ttl) {
  std::vector<RangeTlbi> out;
  auto c = range_tlbi_begin<uint64_t>(iova, size, tg, ttl);
  while (c.pages != 0) {
    const auto [f, rest] = range_tlbi_next(c);
    out.push_back({f.addr, uint8_t(f.tg), uint8_t(f.scale), uint8_t(f.num), uint8_t(f.ttl)});
    c = rest;
  }
  return out;
}

} // namespace iommuspec::smmuv3

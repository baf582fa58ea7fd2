// The model's encoders as plug-ins, and the named alternatives: deliberately wrong ones (each
// the model's with one mistake) and Linux 6.12's arithmetic verbatim. Sources:
//   [L]  linux-source-6.12 drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c
//        __arm_smmu_tlb_inv_range, arm-smmu-v3.h CMDQ_TLBI_0_SCALE GENMASK_ULL(24, 20),
//        include/linux/bitfield.h FIELD_PREP (masks a non-constant value to the field)
//   [LI] linux-source-6.12 drivers/iommu/intel/cache.c calculate_psi_aligned_address,
//        cache_tag_flush_iotlb; iommu.h aligned_nrpages, qi_desc_piotlb
#include "encoders.h"

namespace iommuspec::solvers {
namespace {

template <class F>
SpanDecoder span_decoder_of(std::string name, F f) {
  return {std::move(name), f, f};
}
template <class B, class N>
RangeSplitter splitter_of(std::string name, B begin, N next, bool aligned = false,
                          bool leaf_only = false) {
  return {std::move(name), begin, next, begin, next, aligned, leaf_only};
}
template <class F>
PsiEncoder psi_of(std::string name, F f, bool pasid_based = false) {
  return {std::move(name), f, f, pasid_based};
}
template <class F>
BlockSplitter block_of(std::string name, F f) {
  return {std::move(name), f, f};
}
template <class F>
DevTlbEncoder devtlb_of(std::string name, F f) {
  return {std::move(name), f, f};
}

// The model's splitter steps (smmuv3/range.h), as function objects for either value type.
struct ModelBegin {
  template <class V>
  smmuv3::RangeCursor<V> operator()(const V& iova, const V& size, const V& tg, const V& ttl) const {
    return smmuv3::range_tlbi_begin(iova, size, tg, ttl);
  }
};
struct ModelNext {
  template <class V>
  auto operator()(const smmuv3::RangeCursor<V>& c) const {
    return smmuv3::range_tlbi_next(c);
  }
};

// The model's PSI with the domain-selective fallback (vtd/range.h psi_block, psi_fits).
template <class V>
PsiDesc<V> psi_with_fallback(const vtd::PsiBlock<V>& b, const V& mamv, bool fallback) {
  using O = arith::Ops<V>;
  const auto wide = fallback ? !vtd::psi_fits(b, mamv) : O::truth(mamv, false);
  return {wide, O::ite(wide, O::lit(mamv, 0), b.addr), O::ite(wide, O::lit(mamv, 0), b.mask)};
}

// psi_block with the page count and rounding given: the alternatives below change one of them.
template <class V>
vtd::PsiBlock<V> psi_block_from(const V& start, const V& pfn, const V& end_pfn, const V& rounded) {
  using O = arith::Ops<V>;
  const V bitmask = O::shl(O::lit(start, 1), rounded) - 1;
  const V shared = ~(pfn ^ end_pfn) & ~bitmask;
  const V misaligned = O::ite(shared == 0, O::lit(start, 52), O::ctz(shared));
  const V mask = O::ite((bitmask & pfn) != 0, misaligned, rounded);
  return {start & ~(O::shl(O::lit(start, 1), mask + 12) - 1), mask};
}

// [LI] calculate_psi_aligned_address verbatim: pages = aligned_nrpages(start, end - start + 1)
// = PAGE_ALIGN((start & ~PAGE_MASK) + size) >> 12, which wraps to 0 when the range starts in
// page 0 and ends in the top page; then __roundup_pow_of_two(0) = 1UL << fls_long(~0UL), a
// shift by 64 that x86-64 performs as a shift by 0 (count masked to 6 bits): one page.
template <class V>
vtd::PsiBlock<V> linux_psi_block(const V& start, const V& last) {
  using O = arith::Ops<V>;
  const V size = last - start + 1;
  const V aligned_end = ((start & 0xfff) + size + 0xfff) & O::lit(start, ~uint64_t(0xfff));
  const V pages = O::lshr(aligned_end, O::lit(start, 12));
  const V rounded = O::bit_width(pages - 1) & 63;
  const V pfn = O::lshr(start, O::lit(start, 12));
  return psi_block_from(start, pfn, pfn + pages - 1, rounded);
}

// [L] __arm_smmu_tlb_inv_range verbatim: num_pages = size >> tg; non-leaf ("else if
// ((num_pages & CMDQ_TLBI_RANGE_NUM_MAX) == 1) num_pages++;"); then per command scale =
// __ffs(num_pages), num = (num_pages >> scale) & 31, and the command gets
// FIELD_PREP(CMDQ_TLBI_0_SCALE, scale), i.e. scale & 31; inv_range = num << (scale + tg).
// Whole leaves only (io-pgtable's gather). `leaf`: the TTL is the caller's (ttl != 0).
RangeSplitter linux_splitter(const std::string& name, bool leaf) {
  return splitter_of(
      name,
      [leaf](const auto& iova, const auto& size, const auto& tg, const auto& ttl) {
        using V = std::decay_t<decltype(iova)>;
        using O = arith::Ops<V>;
        const V pages = O::lshr(size, smmuv3::tg_granule_shift(tg));
        const V t = leaf ? ttl : O::lit(ttl, 0);
        const V bumped = leaf ? pages : O::ite((pages & 31) == 1, pages + 1, pages);
        return smmuv3::RangeCursor<V>{iova, bumped, tg, t};
      },
      [](const auto& c) {
        using V = std::decay_t<decltype(c.addr)>;
        using O = arith::Ops<V>;
        const V scale = O::ctz(c.pages);
        const V num = O::lshr(c.pages, scale) & 31;
        const V g = smmuv3::tg_granule_shift(c.tg);
        const smmuv3::RangeFields<V> f{c.pages != 0, c.addr, c.tg, scale & 31, num - 1, c.ttl};
        const smmuv3::RangeCursor<V> rest{c.addr + O::shl(num, scale + g),
                                          c.pages - O::shl(num, scale), c.tg, c.ttl};
        return std::pair{f, rest};
      },
      true, leaf);
}

} // namespace

std::vector<smmuv3::RangeTlbi> split(const RangeSplitter& s, uint64_t iova, uint64_t size,
                                     uint8_t tg, uint8_t ttl, size_t max) {
  std::vector<smmuv3::RangeTlbi> out;
  auto c = s.begin_u(iova, size, tg, ttl);
  while (out.size() < max) {
    const auto [f, rest] = s.next_u(c);
    if (!f.valid) break;
    out.push_back({f.addr, uint8_t(f.tg), uint8_t(f.scale), uint8_t(f.num), uint8_t(f.ttl)});
    c = rest;
  }
  return out;
}

// ---- SMMUv3 decoders ---------------------------------------------------------------------------

SpanDecoder model_span_decoder() {
  return span_decoder_of(
      "model", [](const auto& addr, const auto& tg, const auto& scale, const auto& num,
                  const auto& ril) { return smmuv3::tlbi_span(addr, tg, scale, num, ril); });
}

std::vector<std::string> span_decoder_names() {
  return {"model", "num-off-by-one", "wraps"};
}

std::optional<SpanDecoder> span_decoder(const std::string& name) {
  if (name == "model") return model_span_decoder();
  // NUM read as the count of granules instead of NUM + 1.
  if (name == "num-off-by-one")
    return span_decoder_of(name, [](const auto& addr, const auto& tg, const auto& scale,
                                    const auto& num, const auto& ril) {
      auto s = smmuv3::tlbi_span(addr, tg, scale, num, ril);
      using O = arith::Ops<std::decay_t<decltype(addr)>>;
      const auto shorter = smmuv3::tlbi_span(addr, tg, scale, num - 1, ril);
      s.hi = O::ite(num == 0, addr, shorter.hi);
      return s;
    });
  // Addr + Range computed modulo 2^64 (a range past the top wraps to low addresses).
  if (name == "wraps")
    return span_decoder_of(name, [](const auto& addr, const auto& tg, const auto& scale,
                                    const auto& num, const auto& ril) {
      using O = arith::Ops<std::decay_t<decltype(addr)>>;
      const auto len = O::shl(num + 1, scale + (10 + 2 * tg));
      return arith::SpanOf<std::decay_t<decltype(addr)>>{
          addr, O::ite(tg == 0 || !ril, addr, addr + len - 1)};
    });
  return std::nullopt;
}

// ---- SMMUv3 splitters --------------------------------------------------------------------------

RangeSplitter model_range_splitter() {
  return splitter_of("model", ModelBegin{}, ModelNext{});
}

std::vector<std::string> range_splitter_names() {
  return {"model", "drops-last-page", "num-one-too-many", "linux-6.12", "linux-6.12-walk"};
}

std::optional<RangeSplitter> range_splitter(const std::string& name) {
  if (name == "model") return model_range_splitter();
  // Counts one page less than the range touches.
  if (name == "drops-last-page")
    return splitter_of(
        name,
        [](const auto& iova, const auto& size, const auto& tg, const auto& ttl) {
          using O = arith::Ops<std::decay_t<decltype(iova)>>;
          auto c = smmuv3::range_tlbi_begin(iova, size, tg, ttl);
          c.pages = O::ite(c.pages == 0, c.pages, c.pages - 1);
          return c;
        },
        ModelNext{});
  // NUM = the window instead of the window - 1.
  if (name == "num-one-too-many")
    return splitter_of(name, ModelBegin{}, [](const auto& c) {
      auto r = smmuv3::range_tlbi_next(c);
      r.first.num = r.first.num + 1;
      return r;
    });
  // [L] __arm_smmu_tlb_inv_range, leaf form (arm_smmu_iotlb_sync: TTL from the leaf size).
  if (name == "linux-6.12") return linux_splitter(name, true);
  // [L] the non-leaf form (arm_smmu_tlb_inv_walk: TTL 0).
  if (name == "linux-6.12-walk") return linux_splitter(name, false);
  return std::nullopt;
}

// ---- VT-d --------------------------------------------------------------------------------------

PsiEncoder model_psi_encoder() {
  return psi_of("model", [](const auto& start, const auto& last, const auto& mamv) {
    return psi_with_fallback(vtd::psi_block(start, last), mamv, true);
  });
}

std::vector<std::string> psi_encoder_names() {
  return {"model", "am-rounds-down", "linux-6.12-first-stage", "linux-6.12-nrpages"};
}

std::optional<PsiEncoder> psi_encoder(const std::string& name) {
  if (name == "model") return model_psi_encoder();
  // The page count rounded down to a power of two instead of up.
  if (name == "am-rounds-down")
    return psi_of(name, [](const auto& start, const auto& last, const auto& mamv) {
      using O = arith::Ops<std::decay_t<decltype(start)>>;
      const auto pfn = O::lshr(start, O::lit(start, 12));
      const auto end_pfn = O::lshr(last, O::lit(start, 12));
      const auto rounded = O::bit_width(end_pfn - pfn + 1) - 1;
      return psi_with_fallback(psi_block_from(start, pfn, end_pfn, rounded), mamv, true);
    });
  // [LI] cache_tag_flush_iotlb for a first-stage domain (domain->use_first_level, nested
  // domains included): qi_batch_add_piotlb(..., addr, pages, ...) whatever the mask;
  // qi_desc_piotlb puts ilog2(pages) in AM with no CAP.MAMV check and no fallback.
  if (name == "linux-6.12-first-stage")
    return psi_of(
        name,
        [](const auto& start, const auto& last, const auto& mamv) {
          return psi_with_fallback(vtd::psi_block(start, last), mamv, false);
        },
        true);
  // [LI] calculate_psi_aligned_address with aligned_nrpages verbatim (second-stage path).
  if (name == "linux-6.12-nrpages")
    return psi_of(name, [](const auto& start, const auto& last, const auto& mamv) {
      return psi_with_fallback(linux_psi_block(start, last), mamv, true);
    });
  return std::nullopt;
}

BlockSplitter model_block_splitter() {
  return block_of("model", [](const auto& pfn, const auto& npages, const auto& mamv) {
    return vtd::block_am(pfn, npages, mamv);
  });
}

std::vector<std::string> block_splitter_names() {
  return {"model", "am-rounds-up"};
}

std::optional<BlockSplitter> block_splitter(const std::string& name) {
  if (name == "model") return model_block_splitter();
  // The block size bounded by bit_width(npages) instead of bit_width(npages) - 1.
  if (name == "am-rounds-up")
    return block_of(name, [](const auto& pfn, const auto& npages, const auto& mamv) {
      using O = arith::Ops<std::decay_t<decltype(pfn)>>;
      const auto aligned = O::ite(pfn == 0, O::lit(pfn, 63), O::ctz(pfn));
      return O::umin(O::umin(aligned, O::bit_width(npages)), mamv);
    });
  return std::nullopt;
}

DevTlbEncoder model_devtlb_encoder() {
  return devtlb_of(
      "model", [](const auto& addr, const auto& order) { return vtd::dev_tlb_addr(addr, order); });
}

std::vector<std::string> devtlb_encoder_names() {
  return {"model", "size-bit-one-low"};
}

std::optional<DevTlbEncoder> devtlb_encoder(const std::string& name) {
  if (name == "model") return model_devtlb_encoder();
  // The size bit placed one below where 2^order pages put it (half the size).
  if (name == "size-bit-one-low")
    return devtlb_of(name, [](const auto& addr, const auto& order) {
      using O = arith::Ops<std::decay_t<decltype(addr)>>;
      return vtd::dev_tlb_addr(addr, O::ite(order == 0, order, order - 1));
    });
  return std::nullopt;
}

} // namespace iommuspec::solvers

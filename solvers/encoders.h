// The encoders the properties check, as plug-ins. Each is one generic function (the model's
// templates of smmuv3/range.h and vtd/range.h, or an alternative written the same way) kept
// twice: over Z3 bit-vectors for the proof and over uint64_t to replay a counterexample as a
// scenario. `make(name, f)` takes a generic lambda and fills both.
#pragma once

#include "smmuv3/range.h"
#include "vtd/range.h"
#include "z3ops.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace iommuspec::solvers {

using Z = z3::expr;
using U = uint64_t;

// ---- SMMUv3 ---------------------------------------------------------------------------------

// What a TLBI by address invalidates (the decoder; the model's is smmuv3::tlbi_span).
template <class V>
using SpanFn = arith::SpanOf<V>(const V& addr, const V& tg, const V& scale, const V& num,
                                const typename arith::Ops<V>::Bool& ril);
struct SpanDecoder {
  std::string name;
  std::function<SpanFn<Z>> z;
  std::function<SpanFn<U>> u;
};

// A splitter of [iova, iova + size) into range TLBIs, as a cursor and a step (the model's is
// smmuv3::range_tlbi_begin / range_tlbi_next). `aligned_inputs`: it requires iova and size to
// be whole leaves of TTL's level (Linux's does: io-pgtable hands it whole leaves);
// `leaf_only`: it is only used with a TTL (the leaf level).
template <class V>
using SplitBeginFn = smmuv3::RangeCursor<V>(const V& iova, const V& size, const V& tg,
                                            const V& ttl);
template <class V>
using SplitNextFn =
    std::pair<smmuv3::RangeFields<V>, smmuv3::RangeCursor<V>>(const smmuv3::RangeCursor<V>&);
struct RangeSplitter {
  std::string name;
  std::function<SplitBeginFn<Z>> begin_z;
  std::function<SplitNextFn<Z>> next_z;
  std::function<SplitBeginFn<U>> begin_u;
  std::function<SplitNextFn<U>> next_u;
  bool aligned_inputs = false;
  bool leaf_only = false;
};
// The commands a splitter gives for concrete inputs (at most `max`).
std::vector<smmuv3::RangeTlbi> split(const RangeSplitter& s, uint64_t iova, uint64_t size,
                                     uint8_t tg, uint8_t ttl, size_t max = 64);

// ---- VT-d -----------------------------------------------------------------------------------

// The IOTLB invalidation an encoder issues for [start, last]: page-selective (addr, am), or
// `wide` (domain-selective; for a PASID-based encoder PASID-selective).
template <class V>
struct PsiDesc {
  typename arith::Ops<V>::Bool wide;
  V addr, am;
};
template <class V>
using PsiFn = PsiDesc<V>(const V& start, const V& last, const V& mamv);
struct PsiEncoder {
  std::string name;
  std::function<PsiFn<Z>> z;
  std::function<PsiFn<U>> u;
  bool pasid_based = false; // PASID-based IOTLB descriptors (first-stage domains)
};

// The AM of the next block of an exact split (the model's is vtd::block_am).
template <class V>
using BlockFn = V(const V& pfn, const V& npages, const V& mamv);
struct BlockSplitter {
  std::string name;
  std::function<BlockFn<Z>> z;
  std::function<BlockFn<U>> u;
};

// The qw1 address bits of a device-TLB invalidation of 2^order pages at addr, S = order != 0
// (the model's is vtd::dev_tlb_addr).
template <class V>
using DevTlbFn = V(const V& addr, const V& order);
struct DevTlbEncoder {
  std::string name;
  std::function<DevTlbFn<Z>> z;
  std::function<DevTlbFn<U>> u;
};

// ---- Queues ---------------------------------------------------------------------------------

// A hardware queue given N commands, `illegal[i]` saying which are illegal: what it reports
// (consumed, stopped) and, once the stop is resolved as Linux does (resume) and everything
// consumed before it completed, which commands' effects are guaranteed (fresh[i]).
struct QueueRun {
  uint32_t consumed = 0;
  bool stopped = false;
  std::vector<bool> fresh;
};
// A uAPI invalidation call given N entries, `refused[i]` saying which the kernel refuses:
// entry_num, whether it failed, and what it promises (host commands or descriptors, as words).
struct UapiRun {
  uint32_t entry_num = 0;
  bool error = false;
  std::vector<std::vector<uint64_t>> promised;
};
struct QueueImpl {
  std::string name;
  std::function<QueueRun(const std::vector<bool>&)> smmu_cmdq, vtd_iq;
  std::function<UapiRun(const std::vector<bool>&)> smmu_viommu, vtd_hwpt;
};

// ---- The model's encoders and the named alternatives -----------------------------------------

SpanDecoder model_span_decoder();
RangeSplitter model_range_splitter();
PsiEncoder model_psi_encoder();
BlockSplitter model_block_splitter();
DevTlbEncoder model_devtlb_encoder();
QueueImpl model_queue();

// Alternatives by name, for `iommuspec prove --encoder` and the tests: deliberately wrong ones
// and Linux 6.12's arithmetic verbatim. Each returns nullopt for an unknown name.
std::vector<std::string> span_decoder_names();
std::optional<SpanDecoder> span_decoder(const std::string& name);
std::vector<std::string> range_splitter_names();
std::optional<RangeSplitter> range_splitter(const std::string& name);
std::vector<std::string> psi_encoder_names();
std::optional<PsiEncoder> psi_encoder(const std::string& name);
std::vector<std::string> block_splitter_names();
std::optional<BlockSplitter> block_splitter(const std::string& name);
std::vector<std::string> devtlb_encoder_names();
std::optional<DevTlbEncoder> devtlb_encoder(const std::string& name);
std::vector<std::string> queue_names();
std::optional<QueueImpl> queue(const std::string& name);

} // namespace iommuspec::solvers

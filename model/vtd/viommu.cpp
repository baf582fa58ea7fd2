// Sources: uapi = linux-source-6.12 include/uapi/linux/iommufd.h; nested.c, iommu.h =
// drivers/iommu/intel/. Clauses VTD.VIOMMU.* (clauses.def).
#include "vtd/viommu.h"

#include "vtd/range.h"

#include <algorithm>

namespace iommuspec::vtd {
namespace {

constexpr uint64_t kPfnLimit = uint64_t(1) << 52; // 64-bit addresses, 4K pages
// Beyond this many page-selective descriptors per entry the model states no coverage for the
// rest of the range (weaker reading: the allowed set only grows).
constexpr size_t kMaxBlocks = 4096;

// Why an entry is refused, in the order nested.c checks (:110-120), or ok.
Errno refusal(const S1Invalidate& e, std::string_view& clause) {
  // "flags & ~IOMMU_VTD_INV_FLAGS_LEAF || __reserved" -> EOPNOTSUPP (nested.c:110-114)
  if ((e.flags & ~kInvFlagsLeaf) || e.reserved) {
    clause = "VTD.VIOMMU.flags";
    return Errno::eopnotsupp;
  }
  // "@addr ... needs to be 4KB aligned" (uapi :661-662); U64_MAX pages only with addr 0
  // (uapi :671-672; nested.c:116-120)
  if ((e.addr & 0xfff) || (e.npages == UINT64_MAX && e.addr != 0)) {
    clause = "VTD.VIOMMU.addr_align";
    return Errno::einval;
  }
  return Errno::ok;
}

// The range [addr, addr + npages * 4K) as naturally aligned blocks of 2^am pages, am at most
// MAMV: a page-selective descriptor covers exactly such a block (iommu.h:437-439, AM), so
// their union is the range and nothing else (VTD.VIOMMU.range_align).
struct Block {
  uint64_t pfn;
  uint8_t am;
};
std::vector<Block> blocks(uint64_t pfn, uint64_t npages, uint8_t mamv) {
  std::vector<Block> out;
  npages = std::min(npages, kPfnLimit - std::min(pfn, kPfnLimit));
  while (npages > 0 && out.size() < kMaxBlocks) {
    const uint64_t am = block_am<uint64_t>(pfn, npages, mamv); // range.h
    out.push_back({pfn, uint8_t(am)});
    pfn += uint64_t(1) << am;
    npages -= uint64_t(1) << am;
  }
  return out;
}

InvWait wait() {
  InvWait w;
  w.sw = true;
  return w;
}

// One accepted entry: the PASID-based IOTLB invalidation of its range for the HWPT's (DID,
// PASID), IH = LEAF (VTD.VIOMMU.leaf_ih), a wait, then the PASID-based device-TLB invalidation
// of the same range and a wait ("The device TLB will be invalidated automatically if ATS is
// enabled", uapi :674; after the IOTLB, VTD.INV.DEVTLB.after_iotlb). The flush-all form is the
// all-in-PASID granularity (VTD.VIOMMU.flush_all); its G = 1 leaves are not stated as covered
// (weaker reading, as the machine's all_in_pasid rule).
void promise(const NestedHwpt& h, const S1Invalidate& e, uint8_t mamv,
             std::vector<QiDescriptor>& out) {
  const bool ih = (e.flags & kInvFlagsLeaf) != 0;
  std::vector<QiDescriptor> dev;
  if (e.npages == UINT64_MAX) {
    PasidIotlbInv p;
    p.g = PasidIotlbGranularity::all_in_pasid;
    p.did = h.did;
    p.pasid = h.pasid;
    out.push_back(p);
    PasidDevTlbInv d;
    d.sid = h.sid;
    d.pasid = h.pasid;
    d.s = true;
    d.addr = dev_tlb_addr_bits(0, 52); // everything (iommu.h:1206-1218, MAX_AGAW_PFN_WIDTH)
    dev.push_back(d);
  } else {
    for (const Block& b : blocks(e.addr >> 12, e.npages, mamv)) {
      PasidIotlbInv p;
      p.g = PasidIotlbGranularity::page_in_pasid;
      p.did = h.did;
      p.pasid = h.pasid;
      p.addr = b.pfn << 12;
      p.am = b.am;
      p.ih = ih;
      out.push_back(p);
      PasidDevTlbInv d;
      d.sid = h.sid;
      d.pasid = h.pasid;
      d.s = b.am != 0;
      d.addr = dev_tlb_addr_bits(b.pfn << 12, b.am);
      dev.push_back(d);
    }
  }
  out.push_back(wait());
  out.insert(out.end(), dev.begin(), dev.end());
  out.push_back(wait());
}

} // namespace

UserInvalidation convert_s1_invalidate(const NestedHwpt& h, std::span<const S1Invalidate> entries,
                                       uint8_t mamv) {
  UserInvalidation r;
  r.clause = "VTD.VIOMMU.entry_num";
  for (const S1Invalidate& e : entries) {
    if (Errno err = refusal(e, r.clause); err != Errno::ok) {
      r.error = err;
      return r;
    }
    promise(h, e, mamv, r.host);
    ++r.handled; // "array->entry_num = processed" (nested.c:129)
  }
  return r;
}

} // namespace iommuspec::vtd

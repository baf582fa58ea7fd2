// The registry of properties and their encoders.
#include "prove.h"

namespace iommuspec::solvers {

std::string_view verdict_name(Verdict v) {
  switch (v) {
  case Verdict::proved:
    return "proved";
  case Verdict::counterexample:
    return "counterexample";
  case Verdict::unknown:
    break;
  }
  return "unknown";
}

std::vector<Property> all_properties() {
  return {range_tlbi_sound(),    range_split_covers(),  psi_am_covers(),
          piotlb_split_covers(), devtlb_size_covers(),  queue_partial_completion(),
          nested_isolation(),    vtd_nested_isolation()};
}

namespace {

// A property made with the named encoder, if both exist.
template <class E>
std::optional<Property> with(const std::optional<E>& e, Property (*make)(E)) {
  if (!e) return std::nullopt;
  return make(*e);
}

} // namespace

std::optional<Property> property_with_encoder(const std::string& name, const std::string& enc) {
  if (name == "smmuv3.range_tlbi.sound") return with(span_decoder(enc), range_tlbi_sound);
  if (name == "smmuv3.range_split.covers") return with(range_splitter(enc), range_split_covers);
  if (name == "vtd.psi_am.covers") return with(psi_encoder(enc), psi_am_covers);
  if (name == "vtd.piotlb_split.covers") return with(block_splitter(enc), piotlb_split_covers);
  if (name == "vtd.devtlb_size.covers") return with(devtlb_encoder(enc), devtlb_size_covers);
  if (name == "queue.partial_completion") return with(queue(enc), queue_partial_completion);
  if (name == "smmuv3.nested.isolation") return with(nested_walker(enc), nested_isolation);
  if (name == "vtd.nested.isolation") return with(vtd_nested_walker(enc), vtd_nested_isolation);
  return std::nullopt;
}

std::vector<std::string> encoder_names(const std::string& name) {
  if (name == "smmuv3.range_tlbi.sound") return span_decoder_names();
  if (name == "smmuv3.range_split.covers") return range_splitter_names();
  if (name == "vtd.psi_am.covers") return psi_encoder_names();
  if (name == "vtd.piotlb_split.covers") return block_splitter_names();
  if (name == "vtd.devtlb_size.covers") return devtlb_encoder_names();
  if (name == "queue.partial_completion") return queue_names();
  if (name == "smmuv3.nested.isolation") return nested_walker_names();
  if (name == "vtd.nested.isolation") return vtd_nested_walker_names();
  return {};
}

} // namespace iommuspec::solvers

// Properties of the model's invalidation arithmetic and queues, proved with Z3 (or, where the
// model's code is not arithmetic, by exhaustive enumeration, said so in the result).
// `iommuspec prove` runs them (conformance/cli/main.cpp). Each property takes the encoder it
// checks as a parameter (encoders.h), the model's by default, so that any other encoder, a
// deliberately wrong one in tests or Linux's verbatim arithmetic, is checked the same way.
#pragma once

#include "encoders.h"
#include "nested.h"
#include "vtd_nested.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace iommuspec::solvers {

enum class Verdict { proved, counterexample, unknown };
std::string_view verdict_name(Verdict v);

// One named value of a counterexample or witness.
struct Value {
  std::string name;
  uint64_t value = 0;
};

// A scenario file: its id (the file is <id>.scn) and text (conformance/README.md format).
struct ScenarioFile {
  std::string id;
  std::string text;
};

struct Result {
  std::string property;
  std::string encoder;
  Verdict verdict = Verdict::unknown;
  std::string method;        // "z3", "z3, induction on the split's step", "exhaustive, N <= 8"
  std::string detail;        // what was shown (bounds), or what fails
  std::vector<Value> values; // the counterexample, shrunk
  std::vector<ScenarioFile> files; // the counterexample as scenarios that reproduce it
  double seconds = 0;
};

struct Options {
  unsigned timeout_ms = 20000; // per solver call
};

struct Property {
  std::string name;
  std::string statement;
  std::function<Result(const Options&)> run;
};

// Each property with the given encoder (encoders.h; default: the model's).
Property range_tlbi_sound(SpanDecoder d = model_span_decoder());
Property range_split_covers(RangeSplitter s = model_range_splitter());
Property psi_am_covers(PsiEncoder e = model_psi_encoder());
Property piotlb_split_covers(BlockSplitter s = model_block_splitter());
Property devtlb_size_covers(DevTlbEncoder e = model_devtlb_encoder());
Property queue_partial_completion(QueueImpl q = model_queue());
Property nested_isolation(NestedWalker w = model_nested_walker());
Property vtd_nested_isolation(VtdNestedWalker w = model_vtd_nested_walker());

// Every property with the model's encoders, in the order `prove` runs them.
std::vector<Property> all_properties();
// The property NAME with the encoder ENCODER (encoders.h: model, or a named alternative for
// that property); nullopt when either is unknown.
std::optional<Property> property_with_encoder(const std::string& name, const std::string& encoder);
// The encoders a property can be run with (for --help and errors).
std::vector<std::string> encoder_names(const std::string& property);

// Scenarios at the tight inputs of each invalidation encoding (range edges, alignment
// boundaries, maximum NUM/SCALE, the largest AM before the fallback), found with Z3; each
// passes on the model.
std::vector<ScenarioFile> boundary_scenarios(const Options& o = {});

} // namespace iommuspec::solvers

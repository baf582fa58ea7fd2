// Text helpers shared by the report writers.
#pragma once

#include "results.h"

#include <string>

namespace iommuspec::results {

std::string xml_escape(const std::string& s);
// A failing or erroring scenario as text: message, steps (observed/allowed), target log.
std::string failure_text(const ScenarioResult& s);
// The area of a clause: its first two components ("IOMMUFD.IOAS_MAP").
std::string clause_area(const std::string& clause);
// The operation of a step as written ("3: ioas_map ioas_id=A ..." -> "ioas_map").
std::string step_op(const std::string& step);

} // namespace iommuspec::results

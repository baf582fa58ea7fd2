#include "runner/runner.h"

#include "hw/model.h"
#include "iommufd/machine.h"
#include "scenario/encode.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fmt/format.h>
#include <set>

namespace iommuspec::conformance {

using iommufd::Field;
using iommufd::Role;
using scenario::Binding;
using scenario::Names;

std::vector<std::string> clause_catalogue() {
  std::vector<std::string> ids;
  for (const auto& c : iommufd::all_clauses())
    ids.emplace_back(c.id);
  return ids;
}

namespace {

std::string step_text(const scenario::Step& st) {
  scenario::Scenario one;
  one.steps.push_back(st);
  std::string s = scenario::print(one);
  // print() of a scenario with only a step: drop the empty id line.
  const auto nl = s.find('\n');
  s = s.substr(nl + 1);
  while (!s.empty() && s.back() == '\n')
    s.pop_back();
  return s;
}

// Pinned expectations against one side's observation. Empty when they hold.
std::optional<std::string> check_pins(const scenario::Pins& pins, const iommufd::Observation& obs,
                                      const Names& names, const iommufd::Call& call) {
  if (pins.err && *pins.err != obs.err)
    return fmt::format("pinned {} but the call returned {}", errno_name(*pins.err),
                       errno_name(obs.err));
  for (const auto& p : pins.fields) {
    if (p.records) {
      const auto got = scenario::split_records(p, obs.payload);
      if (got.size() != p.records->size())
        return fmt::format("pinned {} records but {} were returned", p.records->size(), got.size());
      for (size_t i = 0; i < got.size(); ++i)
        for (const auto& [f, v] : (*p.records)[i].fields) {
          const uint64_t have = iommufd::read_field(got[i].data(), *f);
          std::optional<uint64_t> want;
          if (const auto* n = std::get_if<scenario::Number>(&v.v))
            want = n->v;
          else if (const auto* r = std::get_if<scenario::Ref>(&v.v)) {
            if (f->names) want = iommufd::name_value(*f->names, r->name);
            if (!want)
              if (const Binding* b = names.find(r->name)) want = b->value + r->offset;
          } else if (const auto* fl = std::get_if<scenario::Flags>(&v.v); fl && f->names) {
            uint64_t x = fl->extra;
            for (const auto& nm : fl->names)
              x |= iommufd::name_value(*f->names, nm).value_or(0);
            want = x;
          }
          if (!want) return fmt::format("record {}: cannot resolve the pinned {}", i, f->name);
          if (*want != have)
            return fmt::format("record {}: pinned {}={} but it is {}", i, f->name,
                               scenario::print_number(*want), scenario::print_number(have));
        }
      continue;
    }
    if (p.bits) {
      std::vector<uint64_t> got;
      for (size_t b = 0; b < obs.payload.size() * 8; ++b)
        if (obs.payload[b / 8] & (1u << (b % 8))) got.push_back(b);
      if (got != *p.bits) return std::string("pinned bits differ from the returned bitmap");
      continue;
    }
    if (p.ranges) {
      const uint64_t cap = call.payload.size() / 16;
      std::vector<Range> got;
      for (uint64_t i = 0; i < cap && (i + 1) * 16 <= obs.payload.size(); ++i) {
        Range r;
        std::memcpy(&r.start, obs.payload.data() + i * 16, 8);
        std::memcpy(&r.last, obs.payload.data() + i * 16 + 8, 8);
        got.push_back(r);
      }
      if (got.size() > p.ranges->size()) got.resize(p.ranges->size());
      if (got != *p.ranges) return std::string("pinned ranges differ from the reported ranges");
      continue;
    }
    const uint64_t v = iommufd::read_field(obs.arg.data(), *p.field);
    if (p.value && *p.value != v)
      return fmt::format("pinned {}={} but it is {}", p.field->name,
                         scenario::print_number(*p.value), scenario::print_number(v));
    if (!p.name.empty())
      if (const Binding* b = names.find(p.name); b && b->value != v)
        return fmt::format("pinned {}={} (ID {}) but it is {}", p.field->name, p.name, b->value, v);
  }
  return std::nullopt;
}

// Bind the names a step introduces, on one side.
void bind(Names& names, const scenario::Encoded& enc, const scenario::Pins& pins,
          const iommufd::Observation& obs, int step) {
  if (obs.err != Errno::ok) return;
  for (const auto& b : enc.binds)
    names.bound[b.name] = {Binding::Kind::value, iommufd::read_field(obs.arg.data(), *b.field), 0,
                           step};
  for (const auto& p : pins.fields)
    if (!p.name.empty() && !names.find(p.name))
      names.bound[p.name] = {Binding::Kind::value, iommufd::read_field(obs.arg.data(), *p.field), 0,
                             step};
}

bool applies(const scenario::Scenario& sc, const TargetInfo& info, iommufd::Profile profile,
             std::string& why) {
  const auto profiles = sc.values("profile");
  if (!profiles.empty() && std::find(profiles.begin(), profiles.end(),
                                     iommufd::profile_name(profile)) == profiles.end()) {
    why = fmt::format("the scenario is for profile {}; this run is {}", fmt::join(profiles, " "),
                      iommufd::profile_name(profile));
    return false;
  }
  std::vector<std::string> missing;
  for (const auto& f : sc.values("features"))
    if (!info.features.count(f)) missing.push_back(f);
  if (!missing.empty()) {
    why = fmt::format("target {} lacks {}", info.name, fmt::join(missing, ", "));
    return false;
  }
  return true;
}

std::string queue_text(const hw::QueueOutcome& q) {
  return fmt::format("{} consumed={}", q.error.empty() ? "ok" : q.error, q.consumed);
}

// Does the pinned allowed set equal the model's? Empty when it does.
std::optional<std::string> check_dma_pins(const std::string& area, const hwc::Expect& e,
                                          const std::vector<hwc::AllowedOutcome>& allowed) {
  if (!e.present) return std::nullopt;
  for (const auto& a : allowed) {
    bool named = false;
    for (const auto& p : e.outcomes)
      named = named || hwc::matches(area, p, a.outcome);
    if (!named)
      return fmt::format("the model also allows '{}', which the pin does not name",
                         hwc::describe(area, a.outcome));
  }
  for (size_t i = 0; i < e.outcomes.size(); ++i) {
    bool found = false;
    for (const auto& a : allowed)
      found = found || hwc::matches(area, e.outcomes[i], a.outcome);
    if (!found) return fmt::format("pinned outcome {} is not allowed by the model", i + 1);
  }
  return std::nullopt;
}

std::optional<std::string> check_values(const hwc::Expect& e, const std::string& name,
                                        const std::map<std::string, uint64_t>& got) {
  if (!e.present) return std::nullopt;
  if (e.name != name) return fmt::format("pinned {} but the model says {}", e.name, name);
  for (const auto& [k, v] : e.values) {
    auto it = got.find(k);
    if (it == got.end()) return fmt::format("{}= is not an output of this step", k);
    if (it->second != v) return fmt::format("pinned {}={} but the model says {}", k, v, it->second);
  }
  return std::nullopt;
}

// Why the records a target read are not this reading, or nothing when they are.
std::optional<std::string> reading_mismatch(const std::string& area, const hwc::RecordsReading& q,
                                            const hw::RecordsOutcome& t) {
  if (t.records.size() != q.records.size() || t.overflow != q.overflow)
    return fmt::format("read {} records, overflow={} where the model says {}, overflow={}",
                       t.records.size(), int(t.overflow), q.records.size(), int(q.overflow));
  for (size_t k = 0; k < q.records.size(); ++k) {
    hw::DmaOutcome o;
    o.kind = hw::DmaOutcome::Kind::fault;
    o.record = t.records[k];
    bool ok = false;
    for (const auto& m : q.records[k])
      ok = ok || m.admits(o);
    if (!ok)
      return fmt::format("record {} is {}; the model allows {}", k, hwc::describe(area, o),
                         q.records[k].empty() ? "none" : hwc::describe(area, q.records[k].front()));
  }
  return std::nullopt;
}

// A hardware-level scenario: compile, then every step on the model and the target.
void run_hw(const scenario::Scenario& sc, Target& target, results::ScenarioResult& r,
            std::set<std::string>& clauses) {
  std::vector<scenario::Diagnostic> diags;
  const auto compiled = hwc::compile(sc, diags);
  if (!compiled) {
    r.verdict = "error";
    r.message = diags.empty() ? "the scenario does not compile" : diags.front().text();
    return;
  }
  const std::string& area = compiled->setup.area;
  std::vector<std::string> missing;
  const auto info = target.info();
  for (const auto& n : compiled->setup.needs)
    if (!info.features.count(n)) missing.push_back(n);
  if (!missing.empty()) {
    r.verdict = "unsupported";
    r.message = fmt::format("target {} lacks {} (its devices cannot issue these accesses)",
                            info.name, fmt::join(missing, ", "));
    return;
  }
  auto model = hwc::make_hw_model(compiled->setup);
  if (!model) {
    r.verdict = "error";
    r.message = "no model for area " + area;
    return;
  }
  try {
    target.hw_reset(compiled->setup);
  } catch (const TargetUnsupported& e) {
    r.verdict = "unsupported";
    r.message = fmt::format("target {}: {}", info.name, e.what());
    return;
  } catch (const TargetError& e) {
    r.verdict = "error";
    r.message = std::string("setting up the scenario: ") + e.what();
    r.log = e.log;
    return;
  }
  r.verdict = "pass";
  bool stopped = false;
  size_t i = 0;
  for (const auto& st : sc.steps) {
    const hwc::Step& hs = compiled->steps[i++];
    results::StepResult sr;
    sr.number = st.number;
    sr.op = step_text(st);
    if (stopped) {
      sr.verdict = "not-run";
      r.steps.push_back(sr);
      continue;
    }
    auto fail = [&](std::string msg, bool model_side) {
      sr.verdict = "fail";
      sr.message = model_side ? "the model disagrees with the pinned expectation: " + msg : msg;
      r.verdict = model_side ? "error" : "fail";
      r.message = fmt::format("step {}: {}{}", st.number, sr.message,
                              sr.clause.empty() ? "" : " [" + sr.clause + "]");
      stopped = true;
    };
    try {
      switch (hs.kind) {
      case hwc::Step::Kind::write:
        sr.allowed = sr.observed = fmt::format("{} words written", hs.writes.size());
        if (!model->write(hs.writes)) {
          fail("a write lies outside the area's RAM", true);
          break;
        }
        target.hw_write(hs.writes);
        break;
      case hwc::Step::Kind::submit:
      case hwc::Step::Kind::resume: {
        const bool sub = hs.kind == hwc::Step::Kind::submit;
        const hw::QueueOutcome m = sub ? model->submit(hs.entries) : model->resume();
        const hw::QueueOutcome t = sub ? target.hw_submit(hs.entries) : target.hw_resume();
        sr.allowed = queue_text(m);
        sr.observed = queue_text(t);
        sr.clause = area == "smmuv3" ? "SMMUV3.CMDQ.consume" : "VTD.IQ.consume";
        clauses.insert(sr.clause);
        if (auto pm = check_values(hs.expect, m.error.empty() ? "ok" : m.error,
                                   {{"consumed", m.consumed}}))
          fail(*pm, true);
        else if (!(t == m))
          fail(fmt::format("the queue shows {} where the model says {}", sr.observed, sr.allowed),
               false);
        break;
      }
      case hwc::Step::Kind::reg_inv: {
        // VT-d 6.5.1: synchronous, at the requested or a coarser granularity (the actual one
        // reported in CCMD_REG.CAIG / IOTLB_REG.IAIG); a reserved granularity is ignored (0).
        const uint8_t g = model->register_invalidate(hs.entries);
        const uint8_t actual = target.hw_register_invalidate(hs.entries);
        sr.allowed = g ? fmt::format("ok granularity=1..{}", g) : "ok granularity=0";
        sr.observed = fmt::format("ok granularity={}", actual);
        sr.clause = "VTD.REG.granularity";
        clauses.insert(sr.clause);
        if (auto pm = check_values(hs.expect, "ok", {}))
          fail(*pm, true);
        else if (g ? (actual < 1 || actual > g) : actual != 0)
          fail(
              fmt::format("the unit reports {} where the model allows {}", sr.observed, sr.allowed),
              false);
        break;
      }
      case hwc::Step::Kind::dma: {
        if (hs.dma.drain && model->queued() > 0) {
          fail("undrained records are queued: read them (events/faults) before a drained dma",
               true);
          break;
        }
        const auto allowed = model->dma(hs.dma);
        std::vector<std::string> texts;
        for (const auto& a : allowed)
          texts.push_back(hwc::describe(area, a.outcome));
        sr.allowed = allowed.size() == 1 ? texts.front()
                                         : fmt::format("any of [{}]", fmt::join(texts, "; "));
        sr.clause = allowed.front().clause;
        if (auto pm = check_dma_pins(area, hs.expect, allowed)) {
          fail(*pm, true);
          break;
        }
        const hw::DmaOutcome t = target.hw_dma(hs.dma);
        sr.observed = hwc::describe(area, t);
        const hwc::AllowedOutcome* hit = nullptr;
        for (const auto& a : allowed)
          if (!hit && a.outcome.admits(t)) hit = &a;
        if (hit) sr.clause = hit->clause;
        clauses.insert(sr.clause);
        if (!hit) {
          fail(fmt::format("the access shows {}; the model allows {}", sr.observed, sr.allowed),
               false);
          break;
        }
        model->after_dma(hs.dma, allowed, t);
        break;
      }
      case hwc::Step::Kind::viommu: {
        const auto m = model->viommu(hs.call);
        if (!m) {
          fail(fmt::format("no vIOMMU or HWPT named {}", hs.call.object), true);
          break;
        }
        const hw::ViommuOutcome t = target.hw_viommu(hs.call);
        auto text = [](const hw::ViommuOutcome& o) {
          return fmt::format("{} entry_num={}", o.error.empty() ? "ok" : o.error, o.entry_num);
        };
        sr.allowed = text(*m);
        sr.observed = text(t);
        if (hs.call.op == "invalidate") {
          sr.clause = area == "smmuv3" ? "SMMUV3.VIOMMU.entry_num" : "VTD.VIOMMU.entry_num";
          clauses.insert(sr.clause);
        }
        if (auto pm = check_values(hs.expect, m->error.empty() ? "ok" : m->error,
                                   {{"entry_num", m->entry_num}}))
          fail(*pm, true);
        else if (!(t == *m))
          fail(fmt::format("the call returned {} where the model says {}", sr.observed, sr.allowed),
               false);
        break;
      }
      case hwc::Step::Kind::records: {
        const std::string& queue = hs.call.object; // a vIOMMU's vEVENTQ, or the unit's own
        const auto got = queue.empty() ? std::optional(model->drain()) : model->vevents(queue);
        if (!got) {
          fail(fmt::format("no vIOMMU named {}", queue), true);
          break;
        }
        const auto& readings = *got;
        const hw::RecordsOutcome t = queue.empty() ? target.hw_records() : target.hw_vevents(queue);
        sr.clause = !queue.empty()     ? "SMMUV3.VIOMMU.vevent"
                    : area == "smmuv3" ? "SMMUV3.EVTQ.record"
                                       : "VTD.FRCD.record";
        clauses.insert(sr.clause);
        auto text = [](size_t n, bool o) {
          return fmt::format("{} records, overflow={}", n, int(o));
        };
        std::vector<std::string> texts;
        for (const auto& q : readings)
          texts.push_back(text(q.records.size(), q.overflow));
        sr.allowed =
            texts.size() == 1 ? texts.front() : fmt::format("any of [{}]", fmt::join(texts, "; "));
        sr.observed = text(t.records.size(), t.overflow);
        // Pins state the first reading (a unit that records every fault it can).
        const auto& first = readings.front();
        if (auto pm = check_values(
                hs.expect, "ok",
                {{"count", first.records.size()}, {"overflow", first.overflow ? 1 : 0}})) {
          fail(*pm, true);
          break;
        }
        std::optional<std::string> bad;
        for (const auto& q : readings) {
          bad = reading_mismatch(area, q, t);
          if (!bad) break;
        }
        if (bad && readings.size() > 1)
          bad = fmt::format("read {}; the model allows {}", sr.observed, sr.allowed);
        if (bad) fail(*bad, false);
        break;
      }
      }
    } catch (const TargetError& e) {
      r.verdict = "error";
      r.message = fmt::format("step {}: {}", st.number, e.what());
      r.log = e.log;
      sr.verdict = "not-run";
      stopped = true;
      r.steps.push_back(sr);
      continue;
    }
    if (sr.verdict.empty()) sr.verdict = "pass";
    r.steps.push_back(sr);
  }
}

} // namespace

results::ScenarioResult run_scenario(const scenario::Scenario& sc, Target& target,
                                     iommufd::Profile profile) {
  results::ScenarioResult r;
  r.id = sc.id;
  r.file = sc.file;
  std::set<std::string> clauses;
  for (const auto& c : sc.values("clauses"))
    clauses.insert(c);
  const auto t0 = std::chrono::steady_clock::now();
  auto finish = [&]() {
    r.clauses.assign(clauses.begin(), clauses.end());
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
  };
  std::string why;
  if (!applies(sc, target.info(), profile, why)) {
    r.verdict = "unsupported";
    r.message = why;
    return finish();
  }
  if (hwc::is_hw_area(sc.area)) {
    run_hw(sc, target, r, clauses);
    return finish();
  }
  iommufd::Machine model(profile);
  Names tnames, mnames;
  std::map<uint64_t, uint64_t> id_map; // model object ID -> target object ID
  try {
    target.reset();
    for (const auto& m : sc.mems) {
      const uint64_t base = target.mem(m.size);
      model.add_mem(base, m.size);
      tnames.bound[m.name] = {Binding::Kind::mem, base, m.size, 0};
      mnames.bound[m.name] = {Binding::Kind::mem, base, m.size, 0};
    }
  } catch (const TargetError& e) {
    r.verdict = "error";
    r.message = std::string("setting up the scenario: ") + e.what();
    r.log = e.log;
    return finish();
  }
  // Target IDs of the objects the model holds live before a step: a fresh ID must be none
  // of them (taken before the model executes the step, whose new object is live after it).
  std::set<uint64_t> live_before;
  iommufd::IdView ids;
  ids.live = [&](uint64_t t) { return live_before.count(t) != 0; };
  ids.to_target = [&](uint64_t m) -> std::optional<uint64_t> {
    auto it = id_map.find(m);
    if (it == id_map.end()) return std::nullopt;
    return it->second;
  };
  r.verdict = "pass";
  bool stopped = false;
  for (const auto& st : sc.steps) {
    results::StepResult sr;
    sr.number = st.number;
    sr.op = step_text(st);
    if (stopped) {
      sr.verdict = "not-run";
      r.steps.push_back(sr);
      continue;
    }
    std::vector<scenario::Diagnostic> diags;
    auto te = scenario::encode(st, tnames, sc.file, diags);
    auto me = scenario::encode(st, mnames, sc.file, diags);
    auto pins = te ? scenario::decode_pins(st, *te->op, sc.file, diags) : std::nullopt;
    if (!te || !me || !pins) {
      r.verdict = "error";
      r.message = diags.empty() ? "the step does not encode" : diags.front().text();
      sr.verdict = "not-run";
      r.steps.push_back(sr);
      stopped = true;
      continue;
    }
    iommufd::Observation obs;
    try {
      obs = target.execute(te->call);
    } catch (const TargetError& e) {
      r.verdict = "error";
      r.message = fmt::format("step {}: {}", st.number, e.what());
      r.log = e.log;
      sr.verdict = "not-run";
      r.steps.push_back(sr);
      stopped = true;
      continue;
    }
    live_before.clear();
    for (const auto& [m, t] : id_map)
      if (const auto* o = model.object(uint32_t(m)); o && !o->tombstone) live_before.insert(t);
    const auto res = model.execute(me->call, &obs);
    const iommufd::OpDesc& op = *te->op;
    sr.observed = iommufd::describe(op, obs, &res.allowed);
    sr.allowed = iommufd::describe(op, res.allowed);
    if (res.allowed.clause) {
      sr.clause = std::string(res.allowed.clause->id);
      clauses.insert(sr.clause);
    }
    for (const auto& rule : res.allowed.rules)
      if (rule.kind == iommufd::FieldRule::Kind::new_obj)
        clauses.insert(std::string(iommufd::clause(iommufd::C::obj_id_unique).id));
    sr.verdict = "pass";
    if (auto dev = iommufd::deviation(op, res.allowed, obs, ids)) {
      sr.verdict = "fail";
      sr.message = *dev;
      r.verdict = "fail";
      r.message = fmt::format("step {}: {} [{}]", st.number, *dev, sr.clause);
      stopped = true;
    } else if (auto pm = check_pins(*pins, res.obs, mnames, me->call)) {
      sr.verdict = "fail";
      sr.message = "the model disagrees with the pinned expectation: " + *pm;
      r.verdict = "error";
      r.message = fmt::format("step {}: {}", st.number, sr.message);
      stopped = true;
    } else if (auto pt = check_pins(*pins, obs, tnames, te->call)) {
      sr.verdict = "fail";
      sr.message = *pt;
      r.verdict = "fail";
      r.message = fmt::format("step {}: {}", st.number, *pt);
      stopped = true;
    }
    if (!stopped && obs.err == Errno::ok) {
      for (const auto& f : op.fields)
        if (f.role == Role::out_obj || f.role == Role::inout_obj) {
          const uint64_t m = iommufd::read_field(res.obs.arg.data(), f);
          const uint64_t t = iommufd::read_field(obs.arg.data(), f);
          if (m) id_map[m] = t;
        }
      bind(tnames, *te, *pins, obs, st.number);
      bind(mnames, *me, *pins, res.obs, st.number);
    }
    r.steps.push_back(sr);
  }
  return finish();
}

std::string explain(const scenario::Scenario& sc, iommufd::Profile profile) {
  auto target = make_model_target(profile);
  const auto r = run_scenario(sc, *target, profile);
  std::string out = fmt::format("{} {} ({})\n", sc.area, sc.id, iommufd::profile_name(profile));
  if (!sc.doc.empty()) out += fmt::format("  \"{}\"\n", sc.doc);
  for (const auto& st : r.steps) {
    out += st.op + "\n";
    if (st.verdict == "not-run") {
      out += "   (not run)\n";
      continue;
    }
    out += fmt::format("   allowed:  {}\n", st.allowed);
    const auto* c = iommufd::clause_by_id(st.clause);
    if (c) {
      out += fmt::format("   clause:   {}: {}\n", c->id, c->text);
      out += fmt::format("   source:   {}\n", c->source);
      if (!c->note.empty()) out += fmt::format("   note:     {}\n", c->note);
    }
    if (!st.message.empty()) out += fmt::format("   !! {}\n", st.message);
  }
  out += fmt::format("verdict on the model: {}{}\n", r.verdict,
                     r.message.empty() ? "" : " (" + r.message + ")");
  return out;
}

std::vector<std::string> collect_files(const std::vector<std::string>& args,
                                       std::vector<std::string>& errors) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const auto& a : args) {
    std::error_code ec;
    if (fs::is_directory(a, ec)) {
      for (const auto& e : fs::recursive_directory_iterator(a, ec))
        if (e.is_regular_file() && e.path().extension() == ".scn")
          files.push_back(e.path().string());
    } else if (fs::is_regular_file(a, ec)) {
      files.push_back(a);
    } else {
      errors.push_back(fmt::format("{}: no such file or directory", a));
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  return files;
}

results::Run run_all(const std::vector<scenario::Scenario>& scenarios,
                     const std::function<std::unique_ptr<Target>()>& make_target,
                     const RunOptions& opt) {
  results::Run run;
  // The first target must start (else this is an infrastructure error for the caller); a
  // replacement that fails to start makes the scenarios it was for errors, and the next
  // scenario tries again.
  std::unique_ptr<Target> target = make_target();
  const TargetInfo info = target->info();
  run.target = info.name;
  run.fingerprint = info.fingerprint;
  run.profile = std::string(iommufd::profile_name(opt.profile));
  run.seed = opt.seed;
  std::vector<const scenario::Scenario*> mine;
  for (size_t i = 0; i < scenarios.size(); ++i)
    if (int(i % size_t(opt.shard_count)) == opt.shard_index) mine.push_back(&scenarios[i]);
  for (size_t i = 0; i < mine.size(); ++i) {
    if (opt.stop && *opt.stop) {
      run.partial = true;
      break;
    }
    results::ScenarioResult r;
    if (!target) {
      try {
        target = make_target();
      } catch (const TargetError& e) {
        r.id = mine[i]->id;
        r.file = mine[i]->file;
        r.verdict = "error";
        r.message = std::string("the target did not start: ") + e.what();
        r.log = e.log;
      }
    }
    if (target) r = run_scenario(*mine[i], *target, opt.profile);
    // A target that failed (crash, timeout, bad state) is replaced before the next one.
    if (r.verdict == "error") target.reset();
    run.scenarios.push_back(std::move(r));
    if (opt.progress) opt.progress(i + 1, mine.size(), run.scenarios.back());
  }
  return run;
}

} // namespace iommuspec::conformance

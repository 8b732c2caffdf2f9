#include "app/rules_cli.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/result.h"
#include "dicom/instance_header.h"
#include "router/rule_set.h"
#include "rules/rule.h"
#include "rules/value.h"

namespace ferry {
namespace {

using rules::CompiledRule;
using rules::Evaluation;
using rules::TagLookup;

constexpr int kExitDecided = 0;
constexpr int kExitError = 2;

const char* JsonTypeName(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      return "a number";
    case nlohmann::json::value_t::object:
      return "an object";
    case nlohmann::json::value_t::array:
      return "an array";
    default:
      return "not a string";
  }
}

// Parses mercure's .tags form: one JSON object whose values are all strings.
Result<TagLookup::Map> ParseTags(const std::string& text, const std::string& what) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument(what + " is not valid JSON: " + e.what());
  }
  if (!doc.is_object()) {
    return Status::InvalidArgument(what + " must hold a JSON object of tag names and values, not " +
                                   std::string(JsonTypeName(doc)));
  }
  TagLookup::Map tags;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (!it.value().is_string()) {
      return Status::InvalidArgument(what + ": the value of \"" + it.key() + "\" is " +
                                     JsonTypeName(it.value()) +
                                     "; tag values must be strings (mercure's .tags form)");
    }
    tags.emplace(it.key(), it.value().get<std::string>());
  }
  return tags;
}

Result<TagLookup::Map> ReadTagsFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::FromErrno(errno, "open tags file " + path);
  }
  std::stringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    return Status::FromErrno(errno, "read tags file " + path);
  }
  return ParseTags(buf.str(), "tags file " + path);
}

Result<TagLookup::Map> ReadDicomTags(const std::string& path) {
  auto header = dicom::ReadInstanceHeader(path, {});
  if (!header) {
    return header.error().WithContext("DICOM file " + path);
  }
  return ParseTags(header->tags_json, "tags of DICOM file " + path);
}

std::string Quoted(const std::string& value) { return rules::Value::StrView(value).Repr(); }

RuleEvalReport Evaluate(const std::string& rule_text,
                        const std::function<Result<TagLookup::Map>()>& read_tags, bool explain) {
  RuleEvalReport report;
  auto rule = CompiledRule::Compile(rule_text);
  if (!rule) {
    report.message = "syntax error at " + rule.error().message();
    if (explain) {
      report.error_position = rules::ShowErrorPosition(rule_text, rule.error().message());
    }
    return report;
  }
  auto tags = read_tags();
  if (!tags) {
    report.message = tags.error().message();
    return report;
  }
  TagLookup lookup(*tags);
  Evaluation e = rule->Evaluate(lookup, explain ? rules::Detail::kFull : rules::Detail::kOutcome);
  switch (e.outcome) {
    case Evaluation::Outcome::kTrigger:
      report.outcome = RuleEvalReport::Outcome::kTrigger;
      break;
    case Evaluation::Outcome::kReject:
      report.outcome = RuleEvalReport::Outcome::kReject;
      break;
    case Evaluation::Outcome::kError:
      report.outcome = RuleEvalReport::Outcome::kError;
      break;
  }
  report.message = e.message;
  if (explain) {
    for (const auto& [name, value] : e.tags_read) {
      report.tags_read.push_back({name, value, value == "<missing>" && !lookup.Find(name)});
    }
    report.value = e.value;
  }
  return report;
}

}  // namespace

const char* RuleEvalOutcomeName(RuleEvalReport::Outcome outcome) {
  switch (outcome) {
    case RuleEvalReport::Outcome::kTrigger:
      return "trigger";
    case RuleEvalReport::Outcome::kReject:
      return "reject";
    case RuleEvalReport::Outcome::kError:
      break;
  }
  return "error";
}

RuleEvalReport EvaluateRuleOnTagsJson(const std::string& rule, const std::string& tags_json,
                                      const std::string& what, bool explain) {
  return Evaluate(rule, [&] { return ParseTags(tags_json, what); }, explain);
}

RuleEvalReport EvaluateRuleOnDicomFile(const std::string& rule, const std::string& dicom_file,
                                       bool explain) {
  return Evaluate(rule, [&] { return ReadDicomTags(dicom_file); }, explain);
}

int PrintRuleEvalReport(const RuleEvalReport& report, bool explain, std::ostream& out) {
  if (report.outcome == RuleEvalReport::Outcome::kError) {
    out << "error: " << report.message << "\n";
  } else {
    out << RuleEvalOutcomeName(report.outcome) << "\n";
  }
  if (explain) {
    if (!report.error_position.empty()) {
      out << report.error_position << "\n";
    }
    for (const auto& read : report.tags_read) {
      out << "  read " << read.name << " = "
          << (read.missing ? std::string("<missing>") : Quoted(read.value)) << "\n";
    }
    if (!report.value.empty()) {
      out << "  value: " << report.value << "\n";
    }
    if (report.outcome == RuleEvalReport::Outcome::kReject) {
      out << "  because: " << report.message << "\n";
    }
  }
  return report.outcome == RuleEvalReport::Outcome::kError ? kExitError : kExitDecided;
}

int RunRulesEval(const RulesEvalOptions& options, std::ostream& out) {
  if (options.tags_file.empty() == options.dicom_file.empty()) {
    out << "error: give exactly one of --tags FILE and --dicom FILE\n";
    return kExitError;
  }
  RuleEvalReport report =
      options.tags_file.empty()
          ? EvaluateRuleOnDicomFile(options.rule, options.dicom_file, options.explain)
          : Evaluate(options.rule, [&] { return ReadTagsFile(options.tags_file); },
                     options.explain);
  return PrintRuleEvalReport(report, options.explain, out);
}

int RunRulesEval(const std::string& rule, const std::string& tags_file,
                 const std::string& dicom_file, bool explain) {
  RulesEvalOptions options;
  options.rule = rule;
  options.tags_file = tags_file;
  options.dicom_file = dicom_file;
  options.explain = explain;
  int code = RunRulesEval(options, std::cout);
  std::cout.flush();
  return code;
}

int RunRulesTest(const Config& config, const std::vector<std::string>& files, std::ostream& out) {
  std::vector<RuleSet::Error> errors;
  auto set = RuleSet::Build(config.rules, &errors);
  if (!set) {
    for (const auto& e : errors) {
      out << "error: " << e.path << ": " << e.reason << "\n";
    }
    return kExitError;
  }
  int code = kExitDecided;
  for (const auto& file : files) {
    auto tags = ReadDicomTags(file);
    if (!tags) {
      out << file << ": error: " << tags.error().message() << "\n";
      code = kExitError;
      continue;
    }
    auto get = [&](const char* key) {
      auto it = tags->find(key);
      return it == tags->end() ? std::string("?") : it->second;
    };
    out << file << " (series " << get("SeriesInstanceUID") << ", " << get("Modality") << ", \""
        << get("SeriesDescription") << "\"):\n";
    SeriesDecision d = (*set)->Classify(TagLookup(*tags));
    for (const auto& o : d.outcomes) {
      const char* name = o.outcome == Evaluation::Outcome::kTrigger  ? "trigger"
                         : o.outcome == Evaluation::Outcome::kReject ? "reject"
                                                                     : "error";
      out << "  " << o.rule << ": " << name << (o.message.empty() ? "" : " (" + o.message + ")")
          << "\n";
    }
    for (const auto& r : config.rules) {
      if (r.disabled) {
        out << "  " << r.name << ": disabled\n";
      }
    }
    if (d.discard) {
      out << "  -> discard"
          << (d.discard_rule.empty() ? " (no rule triggered)" : " (rule " + d.discard_rule + ")")
          << "\n";
      continue;
    }
    if (!d.route_targets.empty()) {
      out << "  -> route to";
      for (const auto& t : d.route_targets) {
        out << " " << t;
      }
      out << "\n";
    }
    for (const RuleOptions* r : d.processing) {
      out << "  -> process with";
      for (const auto& m : r->processing_modules) {
        out << " " << m;
      }
      out << " (rule " << r->name << (r->action == RuleAction::kBoth ? ", then route" : "")
          << ")\n";
    }
    for (const RuleOptions* r : d.notification) {
      out << "  -> notification (rule " << r->name << ")\n";
    }
  }
  return code;
}

}  // namespace ferry

// `ferry rules eval`: evaluates one rule against the tags of a series and says what it decided.
//
// The tags come from a JSON file in mercure's .tags form (an object of string values, as the
// receiver writes series.tags) or from a DICOM file, read as the receiver would
// (dicom::ReadInstanceHeader). The first line of output is exactly one of `trigger`, `reject`
// or `error: <message>`; the exit code is 0 for trigger and reject, 2 for any error (a syntax
// error of the rule, with its column; a run-time error; unreadable or malformed input). With
// `explain`, further lines follow, each indented by two spaces: the tags read and their
// values, the rule's value and why it rejected (for example, which tag was missing), or where
// a syntax error is.
// Thread-safety: reads files and writes to the given stream; call from one thread.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "config/config.h"

namespace ferry {

struct RulesEvalOptions {
  std::string rule;
  std::string tags_file;  // exactly one of tags_file and dicom_file is set
  std::string dicom_file;
  bool explain = false;
};

// Writes the result to `out` and returns the exit code (0 or 2).
int RunRulesEval(const RulesEvalOptions& options, std::ostream& out);

// What `ferry rules eval` decided, as data (the REST API returns it as JSON).
struct RuleEvalReport {
  enum class Outcome { kTrigger, kReject, kError };
  struct TagRead {
    std::string name;
    std::string value;     // as the series has it
    bool missing = false;  // the series does not have the tag
  };

  Outcome outcome = Outcome::kError;
  // kError: what went wrong ("syntax error at column 3: ...", a run-time error, unreadable or
  // malformed tags). kReject: why the rule did not trigger.
  std::string message;
  // Syntax errors, with `explain`: the rule's line and a caret under the column.
  std::string error_position;
  // With `explain`: the tags the rule read, in order, and Python's repr() of its value.
  std::vector<TagRead> tags_read;
  std::string value;
};

// Evaluates `rule` on tags given as JSON text in mercure's .tags form; `what` names the source
// in error messages ("tags file /x/series.tags").
RuleEvalReport EvaluateRuleOnTagsJson(const std::string& rule, const std::string& tags_json,
                                      const std::string& what, bool explain);

// Evaluates `rule` on the tags of a DICOM file, read as the receiver reads them.
RuleEvalReport EvaluateRuleOnDicomFile(const std::string& rule, const std::string& dicom_file,
                                       bool explain);

// Writes a report exactly as `ferry rules eval` prints it; returns the exit code (0 or 2).
int PrintRuleEvalReport(const RuleEvalReport& report, bool explain, std::ostream& out);

const char* RuleEvalOutcomeName(RuleEvalReport::Outcome outcome);  // "trigger", ...

// The same, on standard output.
int RunRulesEval(const std::string& rule, const std::string& tags_file,
                 const std::string& dicom_file, bool explain);

// `ferry rules test --config PATH FILE.dcm...`: for each DICOM file, every rule's outcome on its
// tags (trigger / reject / error, and why) and what the router would do with its series.
// Returns 0 when every file was read, 2 otherwise.
int RunRulesTest(const Config& config, const std::vector<std::string>& files, std::ostream& out);

}  // namespace ferry

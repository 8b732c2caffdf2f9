// StudyTrigger: mercure's study_trigger_series expression, e.g. "'T1' and ('T2' or 'FLAIR')".
//
// Quoted strings combined with and, or and parentheses. A quoted string is satisfied when the
// SeriesDescription of any series received for the study contains it. A study-level rule with
// study_trigger_condition "received_series" completes its study as soon as the expression is
// satisfied. Parsed once when the rules load; errors name the column.
// Thread-safety: immutable after Parse.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace ferry {

class StudyTrigger {
 public:
  static Result<StudyTrigger> Parse(std::string_view text);
  bool Satisfied(const std::vector<std::string>& series_descriptions) const;

 private:
  // Postfix program: a literal pushes whether it is found; kAnd/kOr combine the top two.
  struct Op {
    enum Kind { kLiteral, kAnd, kOr } kind;
    std::string text;
  };
  std::vector<Op> program_;
};

}  // namespace ferry

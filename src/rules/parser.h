// Parser of the rule language: tokens to a syntax tree (ast.h).
//
// Internal to src/rules (rule.cc is its only user). Besides the grammar, the parser enforces
// the language's limits that are visible in the text: only known names (True, False, None,
// tags, the built-in functions), functions and string methods called with a valid number of
// arguments and known keywords, attribute access only on tags and strings, and `tags` on its own
// only as the right operand of `in`. Every error is InvalidArgument with "column N: <reason>".
// Thread-safety: pure function.
#pragma once

#include <memory>
#include <string_view>

#include "core/result.h"
#include "rules/ast.h"

namespace ferry::rules {

Result<std::unique_ptr<Node>> Parse(std::string_view rule);

}  // namespace ferry::rules

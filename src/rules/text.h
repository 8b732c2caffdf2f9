// Text helpers for the rule language: UTF-8 code points and the character classes and case
// mappings behind Python's string methods.
//
// Rule strings are UTF-8 (tag values are converted to UTF-8 by the receiver). Python indexes
// strings by code point, so len(), indexing, slicing and find() work on code points here too.
// Bytes that are not valid UTF-8 never fail: each one is read as a code point of its own
// (U+DC80..U+DCFF, as Python's "surrogateescape" does) and written back as the same byte.
//
// Case mappings and character classes cover ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic
// and full-width Latin; other letters (CJK, kana, Hangul, Hebrew, Arabic) count as letters
// without case. This is a documented subset of Python's Unicode database (docs/rules.md).
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::rules {

// True if every byte is below 0x80: then code point indices are byte indices.
bool IsAscii(std::string_view s);

// Decodes the code point at s[*pos] and advances *pos past it.
char32_t DecodeCodePoint(std::string_view s, size_t* pos);

// Appends the UTF-8 form of `cp` (U+DC80..U+DCFF as the single raw byte).
void AppendCodePoint(char32_t cp, std::string* out);

// All code points of `s`.
std::vector<char32_t> ToCodePoints(std::string_view s);
std::string FromCodePoints(const std::vector<char32_t>& cps, size_t begin, size_t end);

// Number of code points in `s`.
size_t CodePointCount(std::string_view s);

// Byte offset of code point number `index` (0 <= index <= CodePointCount(s)).
size_t ByteOffsetOfCodePoint(std::string_view s, size_t index);

// The code point index of byte offset `offset` (which must start a code point).
size_t CodePointIndexOfByte(std::string_view s, size_t offset);

char32_t ToLowerChar(char32_t cp);
char32_t ToUpperChar(char32_t cp);
bool IsCased(char32_t cp);
bool IsAlphaChar(char32_t cp);
bool IsDigitChar(char32_t cp);  // ASCII 0-9
bool IsSpaceChar(char32_t cp);  // Python's str.isspace() set

std::string ToLower(std::string_view s);
std::string ToUpper(std::string_view s);

}  // namespace ferry::rules

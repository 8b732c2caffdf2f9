// Tests of Value: Python's truth, equality, ordering, repr() and str().
#include "rules/value.h"

#include <gtest/gtest.h>

#include <cmath>

#include "rules/text.h"

namespace ferry::rules {
namespace {

TEST(ValueTest, Truthiness) {
  EXPECT_FALSE(Value::None().Truthy());
  EXPECT_FALSE(Value::Bool(false).Truthy());
  EXPECT_TRUE(Value::Int(-1).Truthy());
  EXPECT_FALSE(Value::Int(0).Truthy());
  EXPECT_FALSE(Value::Float(0.0).Truthy());
  EXPECT_FALSE(Value::Float(-0.0).Truthy());
  EXPECT_TRUE(Value::Float(std::nan("")).Truthy());
  EXPECT_FALSE(Value::Str("").Truthy());
  EXPECT_TRUE(Value::StrView("0").Truthy());
  EXPECT_FALSE(Value::List({}).Truthy());
  EXPECT_TRUE(Value::Tuple({Value::None()}).Truthy());
}

TEST(ValueTest, FloatRepr) {
  struct Case {
    double d;
    const char* repr;
  } cases[] = {
      {1.0, "1.0"},
      {0.1, "0.1"},
      {-2.5, "-2.5"},
      {1e16, "1e+16"},
      {1e15, "1000000000000000.0"},
      {0.0001, "0.0001"},
      {0.00001, "1e-05"},
      {1.5e-5, "1.5e-05"},
      {123.456, "123.456"},
      {1e100, "1e+100"},
      {-0.0, "-0.0"},
      {5e-324, "5e-324"},
      {HUGE_VAL, "inf"},
      {-HUGE_VAL, "-inf"},
      {1.7976931348623157e308, "1.7976931348623157e+308"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(FormatFloat(c.d), c.repr);
  }
  EXPECT_EQ(FormatFloat(std::nan("")), "nan");
}

TEST(ValueTest, StrRepr) {
  EXPECT_EQ(Value::Str("abc").Repr(), "'abc'");
  EXPECT_EQ(Value::Str("it's").Repr(), "\"it's\"");
  EXPECT_EQ(Value::Str("it's \"x\"").Repr(), "'it\\'s \"x\"'");
  EXPECT_EQ(Value::Str("a\\b\n\t\x01").Repr(), "'a\\\\b\\n\\t\\x01'");
  EXPECT_EQ(Value::Str("M\u00fcnchen").Repr(), "'M\u00fcnchen'");
  EXPECT_EQ(Value::Str("\xc2\xa0").Repr(), "'\\xa0'");
  EXPECT_EQ(Value::Str("\xff").Repr(), "'\\udcff'");  // an invalid byte, as surrogateescape
  EXPECT_EQ(Value::Str("x").ToString(), "x");
  EXPECT_EQ(Value::List({Value::Str("a"), Value::Int(1)}).ToString(), "['a', 1]");
  EXPECT_EQ(Value::Tuple({Value::Float(2)}).ToString(), "(2.0,)");
}

TEST(ValueTest, EqualityAcrossNumbers) {
  EXPECT_TRUE(Equal(Value::Int(1), Value::Float(1.0)));
  EXPECT_TRUE(Equal(Value::Bool(true), Value::Int(1)));
  EXPECT_FALSE(Equal(Value::Str("1"), Value::Int(1)));
  EXPECT_FALSE(Equal(Value::List({}), Value::Tuple({})));
  EXPECT_TRUE(Equal(Value::Str("ab"), Value::StrView("ab")));
  EXPECT_TRUE(Equal(Value::None(), Value::None()));
}

TEST(ValueTest, Ordering) {
  bool r = false;
  EXPECT_TRUE(Ordered(CompareOp::kLt, Value::Int(1), Value::Float(1.5), &r));
  EXPECT_TRUE(r);
  EXPECT_TRUE(Ordered(CompareOp::kGe, Value::Str("b"), Value::Str("a"), &r));
  EXPECT_TRUE(r);
  EXPECT_TRUE(Ordered(CompareOp::kLt, Value::Str("Z"), Value::Str("\u00e9"), &r));
  EXPECT_TRUE(r);
  EXPECT_FALSE(Ordered(CompareOp::kLt, Value::Str("1"), Value::Int(1), &r));
  EXPECT_FALSE(Ordered(CompareOp::kLt, Value::None(), Value::None(), &r));
  EXPECT_TRUE(Ordered(CompareOp::kLt, Value::List({Value::Int(1)}),
                      Value::List({Value::Int(1), Value::Int(0)}), &r));
  EXPECT_TRUE(r);
}

TEST(ValueTest, CopiesOfOwnedStringsAreIndependent) {
  Value a = Value::Str("a long string that does not fit in the small buffer");
  Value b = a;
  a.SetStr("x");
  EXPECT_EQ(b.str(), "a long string that does not fit in the small buffer");
  Value c = std::move(b);
  EXPECT_EQ(c.str(), "a long string that does not fit in the small buffer");
  Value d = Value::StrView(c.str());
  d.MakeOwned();
  c.SetNone();
  EXPECT_EQ(d.str(), "a long string that does not fit in the small buffer");
}

TEST(TextTest, CodePoints) {
  std::string s = "a\u00e9\u4e2d\U0001F600";
  EXPECT_EQ(CodePointCount(s), 4u);
  EXPECT_EQ(ByteOffsetOfCodePoint(s, 2), 3u);
  EXPECT_EQ(CodePointIndexOfByte(s, 6), 3u);
  EXPECT_EQ(FromCodePoints(ToCodePoints(s), 0, 4), s);
  std::string bad = "a\xff\xc3";  // invalid and truncated sequences survive a round trip
  EXPECT_EQ(CodePointCount(bad), 3u);
  EXPECT_EQ(FromCodePoints(ToCodePoints(bad), 0, 3), bad);
  EXPECT_EQ(ToUpper("stra\u00dfe \u00e9t\u00e9 \u03b1\u03b2 \u0436"),
            "STRA\u00dfE \u00c9T\u00c9 \u0391\u0392 \u0416");
  EXPECT_EQ(ToLower("\u00c4RZTIN \u0100"), "\u00e4rztin \u0101");
}

}  // namespace
}  // namespace ferry::rules

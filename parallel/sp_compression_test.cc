#include "parallel/sp_compression.h"

#include <string>

#include "gtest/gtest.h"

namespace dserve::parallel {
namespace {

TEST(SpCompressionTest, ParsesEveryNameItPrints) {
  for (SpCompression mode :
       {SpCompression::kOff, SpCompression::kInt8, SpCompression::kInt4}) {
    absl::StatusOr<SpCompression> parsed =
        ParseSpCompression(SpCompressionName(mode));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, mode);
  }
  EXPECT_EQ(*ParseSpCompression("int4"), SpCompression::kInt4);
  EXPECT_EQ(SpCompressionChoices(), "off, int8, int4");
}

TEST(SpCompressionTest, RejectsOthersNamingValueAndChoices) {
  for (const std::string bad : {"fp4", "", "INT8", "int8 "}) {
    absl::StatusOr<SpCompression> parsed = ParseSpCompression(bad);
    ASSERT_FALSE(parsed.ok()) << "'" << bad << "'";
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("'" + bad + "'"),
              std::string::npos);
    EXPECT_NE(parsed.status().message().find("off, int8, int4"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace dserve::parallel

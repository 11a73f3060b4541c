#include "parallel/mesh_layout.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::parallel {
namespace {

using ::testing::HasSubstr;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

TEST(MeshLayoutTest, DegreesRoundTripThroughTheLayout) {
  for (const char* spec :
       {"", "dp=2", "dp=2,cfg=2,ulysses=2", "ring=2,ulysses=4,pp=2",
        "dp=3,cfg=2,tp=4,pp=2"}) {
    absl::StatusOr<MeshDegrees> degrees = ParseMeshSpec(spec);
    ASSERT_TRUE(degrees.ok()) << spec << ": " << degrees.status();
    const dserve::v1::MeshLayout layout = MeshLayoutFromDegrees(*degrees);
    absl::StatusOr<MeshDegrees> back = MeshDegreesFromLayout(layout);
    ASSERT_TRUE(back.ok()) << spec << ": " << back.status();
    EXPECT_EQ(FormatMeshSpec(*back), FormatMeshSpec(*degrees)) << spec;
  }
}

TEST(MeshLayoutTest, EveryFieldIsSet) {
  MeshDegrees d;
  d.dp = 2;
  d.cfg = 2;
  d.ulysses = 2;
  const dserve::v1::MeshLayout layout = MeshLayoutFromDegrees(d);
  EXPECT_EQ(layout.dp(), 2);
  EXPECT_EQ(layout.cfg(), 2);
  EXPECT_EQ(layout.ring(), 1);
  EXPECT_EQ(layout.ulysses(), 2);
  EXPECT_EQ(layout.pp(), 1);
  EXPECT_EQ(layout.tp(), 1);
}

TEST(MeshLayoutTest, UnsetFieldsMeanOne) {
  dserve::v1::MeshLayout layout;
  layout.set_cfg(2);
  absl::StatusOr<MeshDegrees> d = MeshDegreesFromLayout(layout);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(FormatMeshSpec(*d), "dp=1,cfg=2,ring=1,ulysses=1,pp=1,tp=1");
  EXPECT_EQ(WorldSize(*d), 2);
}

TEST(MeshLayoutTest, RejectsNegativeAndInvalidDegrees) {
  dserve::v1::MeshLayout negative;
  negative.set_ring(-2);
  absl::StatusOr<MeshDegrees> d = MeshDegreesFromLayout(negative);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(d.status()), HasSubstr("MeshLayout.ring=-2"));

  dserve::v1::MeshLayout cfg4;
  cfg4.set_cfg(4);
  d = MeshDegreesFromLayout(cfg4);
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(Msg(d.status()), HasSubstr("cfg degree 4"));

  dserve::v1::MeshLayout sp_and_tp;
  sp_and_tp.set_ulysses(2);
  sp_and_tp.set_tp(2);
  EXPECT_FALSE(MeshDegreesFromLayout(sp_and_tp).ok());
}

}  // namespace
}  // namespace dserve::parallel

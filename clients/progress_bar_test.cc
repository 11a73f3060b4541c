#include "clients/progress_bar.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::clients {
namespace {

TEST(RenderProgressLineTest, HalfWay) {
  EXPECT_EQ(RenderProgressLine(10, 20, 1200.0, 10),
            "[#####-----] 10/20  50%  1.2 s  120 ms/step");
}

TEST(RenderProgressLineTest, StartAndEnd) {
  EXPECT_EQ(RenderProgressLine(0, 20, 0.0, 4), "[----]  0/20   0%  0.0 s");
  EXPECT_EQ(RenderProgressLine(20, 20, 2000.0, 4),
            "[####] 20/20 100%  2.0 s  100 ms/step");
}

TEST(RenderProgressLineTest, ClampsStepAndHandlesUnknownTotal) {
  EXPECT_EQ(RenderProgressLine(25, 20, 2000.0, 4),
            "[####] 20/20 100%  2.0 s  100 ms/step");
  EXPECT_EQ(RenderProgressLine(-1, 3, 0.0, 3), "[---] 0/3   0%  0.0 s");
  EXPECT_EQ(RenderProgressLine(3, 0, 500.0, 3), "[---]  0.5 s");
}

TEST(RenderProgressLineTest, OnlyFullCellsAreFilled) {
  // 1/3 of 10 cells is 3.33: three cells, never rounded up early.
  EXPECT_EQ(RenderProgressLine(1, 3, 0.0, 10).substr(0, 12), "[###-------]");
  EXPECT_EQ(RenderProgressLine(2, 3, 0.0, 10).substr(0, 12), "[######----]");
}

TEST(ProgressBarTest, RedrawsInPlaceAndEndsLine) {
  std::ostringstream sink;
  {
    ProgressBar bar(&sink, 4);
    bar.Update(1, 2, 100.0);
    bar.Update(2, 2, 200.0);
    bar.Finish();
  }
  EXPECT_EQ(sink.str(),
            "\r[##--] 1/2  50%  0.1 s  100 ms/step"
            "\r[####] 2/2 100%  0.2 s  100 ms/step\n");
}

TEST(ProgressBarTest, ShorterLinePadsOverLongerOne) {
  std::ostringstream sink;
  ProgressBar bar(&sink, 4);
  bar.SetMessage("queued at position 12");
  bar.SetMessage("started");
  bar.Finish();
  EXPECT_EQ(sink.str(),
            "\rqueued at position 12"
            "\rstarted"
            "              \n");
}

TEST(ProgressBarTest, FinishIsIdempotentAndSilentWhenNothingDrawn) {
  std::ostringstream sink;
  {
    ProgressBar bar(&sink);
    bar.Finish();
  }
  EXPECT_EQ(sink.str(), "");
  {
    ProgressBar bar(&sink, 2);
    bar.SetMessage("x");
    bar.Finish();
    bar.Finish();
  }  // destructor must not add a second newline
  EXPECT_EQ(sink.str(), "\rx\n");
}

}  // namespace
}  // namespace dserve::clients

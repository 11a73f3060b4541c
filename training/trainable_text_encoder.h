#ifndef DSERVE_TRAINING_TRAINABLE_TEXT_ENCODER_H_
#define DSERVE_TRAINING_TRAINABLE_TEXT_ENCODER_H_

// The forward of models::TextEncoder written so autograd can run through it.
//
// Why a second copy: the serving encoder's attention fixes fully-masked
// rows with an in-place nan_to_num_ on the softmax output, which autograd
// rejects (softmax's backward needs that output). Here padded keys get a
// large finite negative score instead, so no row is ever NaN; real rows
// come out identical (exp underflows to exactly 0 either way) and empty
// prompts are zeroed at the end in both. trainable_text_encoder_test checks
// the two agree on the same weights, so they cannot drift apart unnoticed.
//
// Stateless and thread-safe; blocks until the compute is done.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/models/model_config.h"
#include <ATen/core/Tensor.h>

namespace dserve::training {

// [B, max_len, dim] embeddings of `prompts` (zero beyond each length), as
// models::TextEncoder::Encode computes them, differentiable in `weights`.
// INVALID_ARGUMENT if a prompt is longer than max_len words or a weight is
// missing.
absl::StatusOr<at::Tensor> TrainableTextEncode(
    const models::PipelineConfig& config, const models::WeightMap& weights,
    const std::vector<std::string>& prompts);

}  // namespace dserve::training

#endif  // DSERVE_TRAINING_TRAINABLE_TEXT_ENCODER_H_

// Prints the umT5 token ids of each line of a prompts file, one line of
// space-separated ids per prompt (the format of
// tools/reference/spm_golden.py, which umt5_tokenizer_spm_golden_test
// compares against). --clean applies Wan's prompt cleaning first.
//
//   umt5_tokenize --model=spiece.model --prompts=FILE [--max_length=512]

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "worker/models/text/umt5_tokenizer.h"

ABSL_FLAG(std::string, model, "", "SentencePiece model (spiece.model).");
ABSL_FLAG(std::string, prompts, "", "One prompt per line (UTF-8).");
ABSL_FLAG(int, max_length, 512, "Ids per prompt including </s>.");
ABSL_FLAG(bool, clean, false, "Apply Wan's prompt cleaning first.");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  auto tokenizer =
      dserve::models::Umt5Tokenizer::Load(absl::GetFlag(FLAGS_model));
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "umt5_tokenize: %s\n",
                 tokenizer.status().ToString().c_str());
    return 2;
  }
  std::ifstream in(absl::GetFlag(FLAGS_prompts));
  if (!in) {
    std::fprintf(stderr, "umt5_tokenize: cannot open %s\n",
                 absl::GetFlag(FLAGS_prompts).c_str());
    return 2;
  }
  std::string line;
  while (std::getline(in, line)) {
    auto tokens =
        absl::GetFlag(FLAGS_clean)
            ? (*tokenizer)->EncodePrompt(line, absl::GetFlag(FLAGS_max_length))
            : (*tokenizer)->Encode(line, absl::GetFlag(FLAGS_max_length));
    if (!tokens.ok()) {
      std::fprintf(stderr, "umt5_tokenize: %s\n",
                   tokens.status().ToString().c_str());
      return 1;
    }
    std::string out;
    for (size_t i = 0; i < tokens->ids.size(); ++i) {
      if (i > 0) out += ' ';
      out += std::to_string(tokens->ids[i]);
    }
    std::printf("%s\n", out.c_str());
  }
  return 0;
}

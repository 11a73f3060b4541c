#!/usr/bin/python3
"""Writes testdata/tokenizer_golden.tsv: python3-sentencepiece's ids for
umt5_tokenizer_test, with HF T5 truncation (truncation=True, one sequence):
ids = sp.encode(text)[:max_len - 1] + [eos].

Lines: `mode <TAB> max_len <TAB> hex(UTF-8 text) <TAB> ids <TAB> untruncated`
with mode "raw" (Encode: text as given) or "prompt" (EncodePrompt: Wan's
cleaning first, gen_clean_golden.wan_clean).

    /usr/bin/python3 worker/models/text/gen_tokenizer_golden.py \
        > worker/models/text/testdata/tokenizer_golden.tsv
"""
import os
import random
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_clean_golden import HAND, NEGATIVE, wan_clean  # noqa: E402

PROMPTS = [
    "A cat walks on the grass.",
    "一只猫在草地上散步",
    "zebra xylophone qq",
    "Hello, World!",
    "",
    " ",
    "A red car drives through the rain at night, its lights reflecting on "
    "the wet road. " * 6,
    "Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ and ｶﾀｶﾅ",
    "ﬁne ﬂour, e\u0301, \u212b, \u00a0 nbsp",
    "emoji 😀 and rare 龘 characters",
    "猫が草の上を歩いています。고양이가 잔디 위를 걷고 있습니다.",
    NEGATIVE,
    "</s> <pad> <unk> literal",
    "tabs\tand\nnewlines\r\nhere",
    "numbers 1234567890 3.14159 -42",
]


def main():
    sp = spm.SentencePieceProcessor(
        model_file=os.path.join(HERE, "testdata", "umt5_test_spm.model"))
    eos = sp.eos_id()
    assert sp.id_to_piece(eos) == "</s>"
    rng = random.Random(7)
    words = open(os.path.join(HERE, "testdata", "spm_train.txt"),
                 encoding="utf-8").read().split()
    prompts = PROMPTS + [" ".join(rng.choice(words) for _ in range(
        rng.randint(1, 60))) for _ in range(60)]
    rows = []
    for mode, texts in (("raw", prompts), ("prompt", prompts + HAND)):
        for text in texts:
            tokenized = wan_clean(text) if mode == "prompt" else text
            pieces = sp.encode(tokenized)
            for max_len in (1, 2, 5, 16, 512):
                ids = pieces[:max_len - 1] + [eos]
                rows.append("%s\t%d\t%s\t%s\t%d" % (
                    mode, max_len, text.encode("utf-8").hex(),
                    " ".join(map(str, ids)), len(pieces) + 1))
    print("\n".join(rows))


if __name__ == "__main__":
    main()

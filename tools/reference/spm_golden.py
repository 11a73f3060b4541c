#!/usr/bin/env python3
"""Golden token ids of a SentencePiece model, the way Wan's umT5 tokenizer
(HF T5 tokenizer, special tokens on) produces them for plain text: the
pieces' ids, truncated to max_length - 1, then </s> = 1 appended (no BOS).

  /usr/bin/python3 tools/reference/spm_golden.py --model M.model --prompts FILE [--max_length 512]

FILE holds one prompt per line (UTF-8; only the line break is removed; a
literal "\\n" is NOT unescaped). Prints one line per prompt: the ids,
space-separated. Prompt cleaning (ftfy, html.unescape, whitespace collapse)
is not applied: feed already-cleaned text. Needs python3-sentencepiece.
"""

import argparse
import sys

import sentencepiece as spm

EOS_ID = 1


def golden_ids(processor, text, max_length):
    ids = list(processor.encode(text, out_type=int))
    return ids[:max_length - 1] + [EOS_ID]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="spiece.model path")
    ap.add_argument("--prompts", required=True, help="one prompt per line")
    ap.add_argument("--max_length", type=int, default=512,
                    help="ids per prompt including </s> (Wan: text_len 512)")
    args = ap.parse_args()
    if args.max_length < 1:
        print(f"--max_length={args.max_length}: must be >= 1", file=sys.stderr)
        return 2
    processor = spm.SentencePieceProcessor(model_file=args.model)
    if processor.piece_to_id("</s>") != EOS_ID:
        print(f"{args.model}: '</s>' has id {processor.piece_to_id('</s>')}, "
              f"umT5 needs {EOS_ID}", file=sys.stderr)
        return 1
    with open(args.prompts, encoding="utf-8") as f:
        for line in f:
            text = line[:-1] if line.endswith("\n") else line
            print(" ".join(str(i) for i in golden_ids(processor, text,
                                                      args.max_length)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

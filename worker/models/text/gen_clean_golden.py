#!/usr/bin/python3
"""Writes testdata/clean_golden.tsv: Python's answers for prompt_clean_test.

Each line is `kind <TAB> hex(input UTF-8 bytes) <TAB> hex(expected UTF-8)`:
  utf8     bytes.decode('utf-8', errors='replace')   (input: arbitrary bytes)
  nfc      unicodedata.normalize('NFC', s)
  html     html.unescape(s)
  collapse re.sub(r'\\s+', ' ', s).strip()
  clean    Wan's clean: fix_text -> html.unescape x2 -> strip -> \\s+ -> strip,
           with fix_text = the ftfy subset below, written with ftfy's own
           regexes and tables (ftfy itself is not packaged in Debian).

    /usr/bin/python3 worker/models/text/gen_clean_golden.py \
        > worker/models/text/testdata/clean_golden.tsv
"""
import html
import html.entities
import random
import re
import unicodedata

# ---- ftfy 6 subset (ftfy/chardata.py, ftfy/fixes.py, ftfy/__init__.py) ----
SINGLE_QUOTE_RE = re.compile("[\u02bc\u2018-\u201b]")
DOUBLE_QUOTE_RE = re.compile("[\u201c-\u201f]")
HTML_ENTITY_RE = re.compile(r"&#?[0-9A-Za-z]{1,24};")
ANSI_RE = re.compile("\033\\[((?:\\d|;)*)([a-zA-Z])")
C1_CONTROL_RE = re.compile(r"[\x80-\x9f]")


def _entities():
    ent = {}
    for name, char in html.entities.html5.items():
        if name.endswith(";"):
            ent["&" + name] = char
            if name == name.lower():
                up = "&" + name.upper()
                if html.unescape(up) == up:
                    ent[up] = char.upper()
    return ent


HTML_ENTITIES = _entities()
LIGATURES = {ord(k): v for k, v in {
    "Ĳ": "IJ", "ĳ": "ij", "ŉ": "ʼn", "Ǳ": "DZ", "ǲ": "Dz", "ǳ": "dz",
    "Ǆ": "DŽ", "ǅ": "Dž", "ǆ": "dž", "Ǉ": "LJ", "ǈ": "Lj", "ǉ": "lj",
    "Ǌ": "NJ", "ǋ": "Nj", "ǌ": "nj", "ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl",
    "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "ſt", "ﬆ": "st"}.items()}
WIDTH_MAP = {0x3000: " "}
for _i in range(0xFF01, 0xFFF0):
    _alt = unicodedata.normalize("NFKC", chr(_i))
    if _alt != chr(_i):
        WIDTH_MAP[_i] = _alt
CONTROL_CHARS = {c: None for c in [*range(0, 9), 0x0B, *range(0x0E, 0x20),
                                   0x7F, *range(0x206A, 0x2070), 0xFEFF,
                                   *range(0xFFF9, 0xFFFD)]}


def _unescape_fixup(m):
    text = m.group(0)
    if text in HTML_ENTITIES:
        return HTML_ENTITIES[text]
    if text.startswith("&#"):
        un = html.unescape(text)
        return text if ";" in un else un
    return text


def _c1(m):
    return m.group(0).encode("latin-1").decode("cp1252", errors="replace") \
        .replace("\ufffd", m.group(0))


def fix_segment(text, unescape):
    while True:
        orig = text
        if unescape:
            text = HTML_ENTITY_RE.sub(_unescape_fixup, text)
        text = C1_CONTROL_RE.sub(_c1, text)
        text = text.translate(LIGATURES)
        text = text.translate(WIDTH_MAP)
        text = SINGLE_QUOTE_RE.sub("'", DOUBLE_QUOTE_RE.sub('"', text))
        text = (text.replace("\r\n", "\n").replace("\r", "\n")
                .replace("\u2028", "\n").replace("\u2029", "\n")
                .replace("\u0085", "\n"))
        text = ANSI_RE.sub("", text)
        text = text.translate(CONTROL_CHARS)
        text = unicodedata.normalize("NFC", text)
        if text == orig:
            return text


def fix_text(text):
    out, pos, unescape = [], 0, True
    while pos < len(text):
        brk = text.find("\n", pos) + 1 or len(text)
        brk = min(brk, pos + 1000000)
        seg = text[pos:brk]
        if "<" in seg:
            unescape = False
        out.append(fix_segment(seg, unescape))
        pos = brk
    return "".join(out)


def wan_clean(text):
    text = html.unescape(html.unescape(fix_text(text))).strip()
    return re.sub(r"\s+", " ", text).strip()


# ---- cases -----------------------------------------------------------------
NEGATIVE = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，"
            "整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，"
            "画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
            "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")

HAND = [
    NEGATIVE,
    "  A cat   walks\ton the\ngrass.  ",
    "Ｈｅｌｌｏ　Ｗｏｒｌｄ！ ｶﾀｶﾅ ﾊﾟ",
    "\u201cquoted\u201d and \u2018single\u2019 \u02bcx",
    "ﬁsh ﬂour ﬃ ĳ ǅ ﬅ",
    "Tom &amp; Jerry &lt;3 &amp;amp;lt; &AMP; &NTILDE; &nTILDE; &notit; &not",
    "a&#65;b &#x4e2d; &#0; &#128; &#x110000; &#55296; &#65535; &#59; &#12ab;",
    "<b>bold</b> &amp; stays once\n&amp;amp; next line",
    "line1\r\nline2\rline3\u2028line4\u2029line5\x85end",
    "\x1b[31mred\x1b[0m normal \x1b[1;4mbold",
    "ctl\x00\x01\x07\x0b\x0c\x0e\x1f\x7f\u206a\ufeff\ufff9\ufffc!",
    "e\u0301 A\u030a \u1100\u1161\u11a8 \u0071\u0307\u0323 \u212b \u2126",
    "c1: \x80 \x81 \x8d \x99 \x9f",
    "\u00a0nbsp\u2003em\u3000ideo\u200bzw\u202fnnb ",
    "",
    "   ",
    "emoji 😀 👍🏽 and 中文 日本語 한국어",
    "&" * 5 + "amp;" + "x" * 40,
    "&" + "a" * 40 + ";",
]


def rand_string(rng, pool, n):
    return "".join(rng.choice(pool) for _ in range(n))


def main():
    rng = random.Random(1234)
    rows = []

    def add(kind, inp, exp):
        if isinstance(inp, str):
            inp = inp.encode("utf-8")
        rows.append("%s\t%s\t%s" % (kind, inp.hex(), exp.encode("utf-8").hex()))

    # utf8: ill-formed byte sequences.
    byte_pool = [b"a", b"\xc3\xa9", b"\xe4\xb8\xad", b"\xf0\x9f\x98\x80",
                 b"\x80", b"\xbf", b"\xc0", b"\xc1", b"\xc2", b"\xe0", b"\xe0\x80",
                 b"\xe0\xa0", b"\xed\xa0\x80", b"\xed\x9f\xbf", b"\xf0\x80",
                 b"\xf0\x90\x80", b"\xf4\x90\x80\x80", b"\xf5", b"\xff",
                 b"\xe2\x82", b"\xf4\x8f\xbf\xbf"]
    for _ in range(400):
        b = b"".join(rng.choice(byte_pool) for _ in range(rng.randint(1, 6)))
        add("utf8", b, b.decode("utf-8", errors="replace"))

    # nfc: every code point that decomposes or combines, alone and after a
    # base; random combining sequences.
    special = []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        ch = chr(c)
        if unicodedata.combining(ch) or unicodedata.decomposition(ch):
            special.append(ch)
    for ch in special:
        for s in (ch, "a" + ch, ch + "\u0301"):
            if unicodedata.normalize("NFC", s) != s or rng.random() < 0.2:
                add("nfc", s, unicodedata.normalize("NFC", s))
    bases = list("aeiouAEOUcnsyzw") + ["\u1100", "\u1161", "\u11a8", "\uac00",
                                      "\u0985", "\u09be", "\u0b47", "\u0b3e",
                                      "\u3046", "\u3099", "\u03b1", "\u1f00"]
    marks = ["\u0300", "\u0301", "\u0302", "\u0308", "\u0323", "\u0327",
             "\u031b", "\u0345", "\u0313", "\u05b0", "\u0e38", "\u302a",
             "\u0334", "\u0f71", "\u0f72", "\u0f80"]
    for _ in range(3000):
        s = rand_string(rng, bases + marks + special[:200], rng.randint(1, 7))
        add("nfc", s, unicodedata.normalize("NFC", s))

    # html: every html5 name, with and without ';', and random fragments.
    for name in sorted(html.entities.html5):
        for s in ("&" + name, "x&" + name + "y", "&" + name + "abc;"):
            add("html", s, html.unescape(s))
    frags = ["&", "#", "x", "X", "1", "9", "a", "F", "amp", "lt", "not", "in",
             ";", " ", "\t", "<", "é", "中", "copy", "Aacute", "0", "38"]
    for _ in range(2000):
        s = rand_string(rng, frags, rng.randint(1, 12))
        add("html", s, html.unescape(s))

    # collapse.
    ws = [c for c in map(chr, range(0x3100)) if c.isspace()]
    for _ in range(300):
        s = rand_string(rng, ws + list("ab中"), rng.randint(0, 10))
        add("collapse", s, re.sub(r"\s+", " ", s).strip())

    # clean: hand-written prompts, then random mixtures of every feature.
    for s in HAND:
        add("clean", s, wan_clean(s))
    pool = (list("abc XYZ,.!?") + ["\n", "\r", "\r\n", "\t", "\x1b[", "31m",
            "&", "amp;", "#", "x41", "65", ";", "lt;", "<", "EACUTE", "\x85",
            "\x92", "\u2019", "\u201c", "ﬁ", "ǆ", "Ａ", "，", "　", "ｶ", "ﾞ",
            "e\u0301", "\u0301", "\u1100\u1161", "\u11a8", "\x00", "\ufeff",
            "\u2028", "中", "😀", "\u00a0", "ﬅ", "\u212b"])
    for _ in range(1500):
        s = rand_string(rng, pool, rng.randint(1, 16))
        add("clean", s, wan_clean(s))
    print("\n".join(rows))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Writes the committed seed corpora under fuzz/corpus/<target>/.

Run from the repository root with Debian's interpreter (python3-torch,
python3-protobuf, protoc):  /usr/bin/python3 fuzz/make_seed_corpus.py
It overwrites only the seed_* files it writes, so inputs added by hand
(crash reproducers, named repro_*) stay. Seeds are small on purpose:
libFuzzer mutates from them, so each covers one feature of its format.
"""

import collections
import io
import os
import struct
import subprocess
import sys
import tempfile
import zipfile

import torch

ROOT = os.getcwd()
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
sys.path.insert(0, os.path.join(ROOT, "tools", "wan"))
import safetensors_writer  # noqa: E402


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, "seed_" + name), "wb") as f:
        f.write(data)


def protos(tmp):
    subprocess.check_call(["protoc", "-I" + ROOT, "--python_out=" + tmp,
                           "proto/dserve/v1/diffusion_service.proto",
                           "proto/dserve/internal/v1/replica_leader.proto"])
    sys.path.insert(0, tmp)
    from proto.dserve.v1 import diffusion_service_pb2 as api
    from proto.dserve.internal.v1 import replica_leader_pb2 as internal
    return api, internal


def request_seeds(api):
    t = "request_validator_fuzzer"
    write(t, "minimal", api.GenerateRequest(prompt="a cat").SerializeToString())
    write(t, "tiny_full", api.GenerateRequest(
        model="tiny-dit", prompt="a red cube on a table", negative_prompt="blur",
        width=64, height=48, num_frames=5, num_inference_steps=4,
        guidance_scale=4.5, flow_shift=3.0, seed=7,
        sampler=api.SAMPLER_FLOW_EULER, output_format=api.OUTPUT_FORMAT_PNG,
        priority=3, client_request_id="req-1",
        preview_every_n_steps=2).SerializeToString())
    write(t, "wan_video", api.GenerateRequest(
        model="wan2.1-t2v-1.3b", prompt="\u732b\u304c\u8d70\u308b \u00e9t\u00e9",
        width=832, height=480, num_frames=81, num_inference_steps=50,
        sampler=api.SAMPLER_FLOW_UNIPC, output_format=api.OUTPUT_FORMAT_MP4,
        fps=24).SerializeToString())
    write(t, "unknown_model", api.GenerateRequest(
        model="x" * 300, prompt="p").SerializeToString())
    write(t, "reports_nothing", api.GenerateRequest(
        model="reports-nothing", prompt="p",
        num_inference_steps=1).SerializeToString())
    # With trailing caps bytes (max_pixels, max_frames, max_steps, chars).
    write(t, "with_caps", api.GenerateRequest(
        model="tiny-dit", prompt="a dog", width=256, height=256,
        num_frames=17).SerializeToString() + bytes([0, 0, 1, 0, 9, 20, 8, 0]))


def plan_seeds(internal, api):
    t = "plan_codec_fuzzer"
    plan = internal.ExecutionPlan(
        model="tiny-dit", width=64, height=64, num_frames=1,
        num_inference_steps=4, flow_shift=3.0, sampler=api.SAMPLER_FLOW_EULER)
    for i in range(2):
        item = plan.items.add()
        item.job_id = "job-%d" % i
        item.prompt = "prompt %d" % i
        item.seed = i
        item.guidance_scale = 4.0
    payload = plan.SerializeToString()
    write(t, "plan", struct.pack("<qq", 1, len(payload)) + payload)
    write(t, "idle", struct.pack("<qq", 0, 0))
    write(t, "shutdown", struct.pack("<qq", 2, 0))
    write(t, "empty_plan", struct.pack("<qq", 1, 0))
    write(t, "bad_command", struct.pack("<qq", 7, 0))
    write(t, "short_payload", struct.pack("<qq", 1, 1000) + payload)


def safetensors_seeds(tmp):
    t = "safetensors_fuzzer"
    g = torch.Generator().manual_seed(1)
    cases = {
        "f32": ({"w": torch.randn(2, 3, generator=g)}, None),
        "mixed": ({"a.bias": torch.randn(3, generator=g).to(torch.bfloat16),
                   "b": torch.arange(6, dtype=torch.int64).reshape(2, 3),
                   "c": torch.tensor([True, False]),
                   "d": torch.zeros(0, 4, dtype=torch.float16),
                   "e": torch.tensor(3.5, dtype=torch.float64),
                   "f": torch.tensor([1, -2], dtype=torch.int8)},
                  {"format": "pt"}),
    }
    for name, (tensors, meta) in cases.items():
        path = os.path.join(tmp, name + ".safetensors")
        safetensors_writer.write(path, tensors, meta)
        with open(path, "rb") as f:
            write(t, name, f.read())
    header = b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    write(t, "handmade", struct.pack("<Q", len(header)) + header + b"\0\0\x80?")


def pth_seeds(tmp):
    t = "pth_fuzzer"
    out = os.path.join(tmp, "pth")
    os.makedirs(out)
    subprocess.check_call(["/usr/bin/python3",
                           os.path.join(ROOT, "tools/wan/make_pth_cases.py"), out])
    for name in sorted(os.listdir(out)):
        if name.endswith(".pth"):
            with open(os.path.join(out, name), "rb") as f:
                data = f.read()
            if len(data) <= 64 * 1024:
                write(t, name[:-len(".pth")], data)
    buf = io.BytesIO()
    torch.save(collections.OrderedDict(
        w=torch.ones(2, 2, dtype=torch.float16)), buf)
    write(t, "small_f16", buf.getvalue())


def text_seeds():
    prompts = {
        "plain": "A cat walks on the grass, realistic style.",
        "html": "Tom &amp; Jerry &lt;3 &#x1F600; &NTILDE; &notit; &#128512",
        "ftfy": "\ufb01sh \uff21\uff22\uff23 \u201cquoted\u201d \u2018x\u2019 \x1b[31mred\x1b[0m",
        "whitespace": "  a\t\tb\r\n\u3000c\u2028d\u0085 e  ",
        "nfc": "e\u0301 A\u030a \u1100\u1161\u11a8 \u0958",
        "controls": "x\x00y\x7fz\u206a\ufeff\ufff9",
        "cjk": "\u4e00\u53ea\u732b\u5728\u8349\u5730\u4e0a\u8d70\uff0c\u5199\u5b9e\u98ce\u683c\u3002",
    }
    for target in ("prompt_clean_fuzzer", "tokenizer_fuzzer"):
        for name, text in prompts.items():
            write(target, name, text)
        write(target, "invalid_utf8", b"ab\xc3\x28\xe2\x82\xff\xf0\x9f\x98")


def job_table_seeds():
    t = "job_table_fuzzer"
    # Bytes are operations (see job_table_fuzzer.cc); these walk the main
    # paths: inserts, state changes, lists and evictions.
    write(t, "inserts", bytes([0, 1, 0, 2, 0, 1, 2, 0, 3, 1, 0, 1, 1]))
    write(t, "lifecycle", bytes([0, 0, 4, 0, 5, 0, 1, 6, 0, 2, 3, 0, 9, 60, 7]))
    write(t, "paging", bytes([0, 0, 0, 0, 0, 0, 0, 0, 3, 2, 3, 2, 3, 2]))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        api, internal = protos(tmp)
        request_seeds(api)
        plan_seeds(internal, api)
        safetensors_seeds(tmp)
        pth_seeds(tmp)
    text_seeds()
    job_table_seeds()


if __name__ == "__main__":
    main()
